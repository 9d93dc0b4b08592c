// Quarantine file and crash marker: what survives a restart, what lifts a quarantine, and
// what happens when either file is damaged.
#include "quarantine.hpp"

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <thread>

using namespace ews;
namespace fs = std::filesystem;

namespace {

using ews::testing::TempDir;
void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

QuarantineEntry entry_for(const fs::path& file, std::string reason) {
    auto id = FileIdentity::of(file);
    REQUIRE(id);
    return QuarantineEntry{file, "fixture_x", *id, std::move(reason), *parse_time("2026-03-01T10:00:00Z")};
}

LoadedPlugin plugin_at(const fs::path& file, const std::string& name) {
    LoadedPlugin p;
    p.file = file;
    p.descriptor.name = name;
    p.identity = FileIdentity::of(file).value_or(FileIdentity{});
    return p;
}

}  // namespace

TEST_CASE("a quarantine survives a restart and holds while the file is unchanged",
          "[quarantine]") {
    TempDir dir;
    const fs::path so = dir.path() / "bad.so";
    const fs::path other = dir.path() / "other.so";
    write(so, "version 1");
    write(other, "other");
    {
        Quarantine q(dir.path());
        CHECK(q.entries().empty());
        CHECK_FALSE(q.reason_for(so));
        q.add(entry_for(so, "crashed the daemon"));
        CHECK(q.reason_for(so) == "crashed the daemon");
        CHECK_FALSE(q.reason_for(other));
        // Adding the same file again replaces its entry.
        q.add(entry_for(so, "failed 3 evaluations in a row"));
        CHECK(q.entries().size() == 1);
    }
    Quarantine again(dir.path());
    REQUIRE(again.entries().size() == 1);
    const auto& e = again.entries()[0];
    CHECK(e.file == so);
    CHECK(e.plugin == "fixture_x");
    CHECK(e.reason == "failed 3 evaluations in a row");
    CHECK(e.since == *parse_time("2026-03-01T10:00:00Z"));
    CHECK(e.identity == *FileIdentity::of(so));
    CHECK(again.reason_for(so) == "failed 3 evaluations in a row");
    CHECK(again.lift_changed().empty());
    CHECK_FALSE(fs::exists(dir.path() / "quarantine.json.tmp"));
}

TEST_CASE("a changed or removed file lifts its quarantine", "[quarantine]") {
    TempDir dir;
    const fs::path replaced = dir.path() / "replaced.so";
    const fs::path removed = dir.path() / "removed.so";
    const fs::path kept = dir.path() / "kept.so";
    write(replaced, "version 1");
    write(removed, "x");
    write(kept, "y");
    {
        Quarantine q(dir.path());
        q.add(entry_for(replaced, "crashed"));
        q.add(entry_for(removed, "crashed"));
        q.add(entry_for(kept, "crashed"));
    }
    // A new version: written beside and renamed over, as an installer does (new inode).
    write(dir.path() / "replaced.so.new", "version 2, longer");
    fs::rename(dir.path() / "replaced.so.new", replaced);
    fs::remove(removed);

    Quarantine q(dir.path());
    CHECK_FALSE(q.reason_for(replaced));  // held only while the identity is the same
    auto lifted = q.lift_changed();
    REQUIRE(lifted.size() == 2);
    CHECK(lifted[0].file == replaced);
    CHECK(lifted[1].file == removed);
    REQUIRE(q.entries().size() == 1);
    CHECK(q.entries()[0].file == kept);
    // The lift is saved.
    Quarantine after(dir.path());
    CHECK(after.entries().size() == 1);
    CHECK(after.reason_for(kept) == "crashed");
}

TEST_CASE("a file rewritten in place with the same size is another version", "[quarantine]") {
    TempDir dir;
    const fs::path so = dir.path() / "p.so";
    write(so, "aaaa");
    Quarantine q(dir.path());
    q.add(entry_for(so, "crashed"));
    const auto before = fs::last_write_time(so);
    write(so, "bbbb");  // same inode, same size
    fs::last_write_time(so, before + std::chrono::seconds(1));
    CHECK_FALSE(q.reason_for(so));
    CHECK(q.lift_changed().size() == 1);
}

TEST_CASE("an unreadable quarantine file is set aside, not fatal", "[quarantine]") {
    TempDir dir;
    const fs::path so = dir.path() / "p.so";
    write(so, "x");
    const fs::path file = dir.path() / "quarantine.json";
    for (const std::string& text :
         {std::string("{not json"), std::string(R"({"plugins":[{"file":"p.so"}]})"),
          std::string(R"({"plugins":[{"file":"p.so","device":1,"inode":2,"size":1,)"
                      R"("mtime_ns":0,"reason":"r","since":"yesterday"}]})")}) {
        write(file, text);
        Quarantine q(dir.path());
        CHECK(q.entries().empty());
        CHECK_FALSE(fs::exists(file));
        CHECK(read(dir.path() / "quarantine.json.unreadable") == text);
        // It works on: the next add writes a good file again.
        q.add(entry_for(so, "crashed"));
        CHECK(Quarantine(dir.path()).reason_for(so) == "crashed");
    }
}

TEST_CASE("the crash marker names the plugin being called until it is left", "[quarantine]") {
    TempDir dir;
    const fs::path so = dir.path() / "fixture_segfaults.so";
    write(so, "library");
    const auto started = *parse_time("2026-03-01T10:00:00Z");
    {
        PluginCallMarker marker(dir.path());
        CHECK_FALSE(marker.take_left_over());
        marker.enter(plugin_at(so, "fixture_segfaults"), started);
        CHECK(fs::exists(marker.path()));
        marker.leave();
        CHECK_FALSE(fs::exists(marker.path()));
        marker.leave();  // leaving twice is harmless
        CHECK_FALSE(marker.take_left_over());

        // A process that dies inside a plugin never leaves: the marker stays.
        marker.enter(plugin_at(dir.path() / "first.so", "first"), started);
        marker.enter(plugin_at(so, "fixture_segfaults"), started);  // the next plugin
    }
    PluginCallMarker next_start(dir.path());
    auto left = next_start.take_left_over();
    REQUIRE(left);
    CHECK(left->unreadable.empty());
    CHECK(left->plugin == "fixture_segfaults");
    CHECK(left->file == so);
    CHECK(left->identity == *FileIdentity::of(so));
    CHECK(left->pid == static_cast<long>(::getpid()));
    CHECK(left->started == started);
    CHECK_FALSE(fs::exists(next_start.path()));  // taken: not found a second time
    CHECK_FALSE(next_start.take_left_over());
}

TEST_CASE("an unreadable crash marker is reported and removed", "[quarantine]") {
    TempDir dir;
    PluginCallMarker marker(dir.path());
    write(marker.path(), "{\"plugin\":");
    auto left = marker.take_left_over();
    REQUIRE(left);
    CHECK_FALSE(left->unreadable.empty());
    CHECK(left->plugin.empty());
    CHECK_FALSE(fs::exists(marker.path()));
}

TEST_CASE("a marker that cannot be written is an error naming the file", "[quarantine]") {
    TempDir dir;
    PluginCallMarker marker(dir.path() / "missing-dir");
    const fs::path so = dir.path() / "p.so";
    write(so, "x");
    CHECK_THROWS_WITH(marker.enter(plugin_at(so, "p"), wall_now()),
                      Catch::Contains((dir.path() / "missing-dir").string()));
}
