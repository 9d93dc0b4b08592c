#include "quarantine.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace ews {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

[[noreturn]] void fail_io(const fs::path& file, const std::string& what, int error) {
    throw std::runtime_error(file.string() + ": cannot " + what + ": " + std::strerror(error));
}

// Replaces `file` with `text` atomically: readers see the old content or the new one, never
// a part. With `sync`, the content is on disk before the rename.
void write_atomically(const fs::path& file, const std::string& text, bool sync) {
    const fs::path tmp = file.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) fail_io(tmp, "create", errno);
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int error = errno;
            ::close(fd);
            fail_io(tmp, "write", error);
        }
        done += static_cast<std::size_t>(n);
    }
    if (sync && ::fsync(fd) != 0) {
        const int error = errno;
        ::close(fd);
        fail_io(tmp, "sync", error);
    }
    if (::close(fd) != 0) fail_io(tmp, "close", errno);
    if (::rename(tmp.c_str(), file.c_str()) != 0) fail_io(file, "replace", errno);
}

// Returns: the whole content of `file`, or nullopt when it does not exist.
// Throws: std::runtime_error when it exists and cannot be read.
std::optional<std::string> read_if_present(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return std::nullopt;
        fail_io(file, "read", errno);
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) fail_io(file, "read", errno);
    return text.str();
}

json identity_json(const FileIdentity& id) {
    return {{"device", id.device}, {"inode", id.inode}, {"size", id.size},
            {"mtime_ns", id.mtime_ns}};
}

FileIdentity identity_from(const json& j) {
    FileIdentity id;
    id.device = j.at("device").get<std::uint64_t>();
    id.inode = j.at("inode").get<std::uint64_t>();
    id.size = j.at("size").get<std::uint64_t>();
    id.mtime_ns = j.at("mtime_ns").get<std::int64_t>();
    return id;
}

// Returns: the time in `text`. Throws: std::runtime_error naming `key` when malformed.
TimePoint time_from(const json& j, const char* key) {
    const auto text = j.at(key).get<std::string>();
    auto t = parse_time(text);
    if (!t) throw std::runtime_error(std::string("'") + key + "' is not a time: " + text);
    return *t;
}

}  // namespace

Quarantine::Quarantine(const fs::path& state_dir) : path_(state_dir / "quarantine.json") {
    try {
        auto text = read_if_present(path_);
        if (!text) return;
        const json doc = json::parse(*text);
        std::vector<QuarantineEntry> entries;
        for (const auto& e : doc.at("plugins")) {
            QuarantineEntry entry;
            entry.file = e.at("file").get<std::string>();
            entry.plugin = e.value("plugin", "");
            entry.identity = identity_from(e);
            entry.reason = e.at("reason").get<std::string>();
            entry.since = time_from(e, "since");
            entries.push_back(std::move(entry));
        }
        entries_ = std::move(entries);
    } catch (const std::exception& e) {
        // json::exception (syntax, missing key, wrong type) or a read error.
        const fs::path aside = path_.string() + ".unreadable";
        std::error_code ec;
        fs::rename(path_, aside, ec);
        spdlog::error("{}: unreadable, quarantine starts empty{}: {}", path_.string(),
                      ec ? "" : " (kept as " + aside.filename().string() + ")", e.what());
    }
}

std::optional<std::string> Quarantine::reason_for(const fs::path& file) const {
    for (const auto& e : entries_) {
        if (e.file != file) continue;
        auto now = FileIdentity::of(file);
        if (now && *now == e.identity) return e.reason;
        return std::nullopt;
    }
    return std::nullopt;
}

std::vector<QuarantineEntry> Quarantine::lift_changed() {
    std::vector<QuarantineEntry> lifted, kept;
    for (auto& e : entries_) {
        auto now = FileIdentity::of(e.file);
        (now && *now == e.identity ? kept : lifted).push_back(std::move(e));
    }
    entries_ = std::move(kept);
    if (!lifted.empty()) save();
    return lifted;
}

void Quarantine::add(QuarantineEntry entry) {
    std::erase_if(entries_, [&](const QuarantineEntry& e) { return e.file == entry.file; });
    entries_.push_back(std::move(entry));
    save();
}

void Quarantine::save() const noexcept {
    try {
        json plugins = json::array();
        for (const auto& e : entries_) {
            json j = identity_json(e.identity);
            j["file"] = e.file.string();
            j["plugin"] = e.plugin;
            j["reason"] = e.reason;
            j["since"] = format_time(e.since);
            plugins.push_back(std::move(j));
        }
        json doc = {{"schema", "ews.quarantine/1"}, {"plugins", std::move(plugins)}};
        write_atomically(path_, doc.dump(2) + "\n", true);
    } catch (const std::exception& e) {
        spdlog::error("{}; the quarantine holds only until this process ends", e.what());
    }
}

PluginCallMarker::PluginCallMarker(const fs::path& state_dir)
    : path_(state_dir / "plugin-call.marker") {}

void PluginCallMarker::enter(const LoadedPlugin& plugin, TimePoint started) {
    json j = identity_json(plugin.identity);
    j["plugin"] = plugin.name();
    j["file"] = plugin.file.string();
    j["pid"] = static_cast<long>(::getpid());
    j["started"] = format_time(started);
    write_atomically(path_, j.dump() + "\n", false);
}

void PluginCallMarker::leave() {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) fail_io(path_, "remove", errno);
}

std::optional<CrashMarker> PluginCallMarker::take_left_over() {
    auto text = read_if_present(path_);
    if (!text) return std::nullopt;
    CrashMarker marker;
    try {
        const json j = json::parse(*text);
        marker.plugin = j.at("plugin").get<std::string>();
        marker.file = j.at("file").get<std::string>();
        marker.identity = identity_from(j);
        marker.pid = j.at("pid").get<long>();
        marker.started = time_from(j, "started");
    } catch (const std::exception& e) {
        marker = CrashMarker{};
        marker.unreadable = e.what();
    }
    leave();
    return marker;
}

}  // namespace ews
