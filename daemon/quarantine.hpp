// quarantine.hpp: keeps indicator plugins that crashed the daemon, or keep failing, out of it
// until their file changes. Two small files in the state directory:
// - quarantine.json: the quarantined plugin files, each with the identity (device, inode,
//   size, mtime) of the version that failed. A file whose identity changed (replaced,
//   rebuilt, touched) is no longer held: its entry is lifted.
// - plugin-call.marker: written before the daemon calls into a plugin and removed after the
//   last plugin returned (osquery's "dirty bit"). A marker found at start means the previous
//   process died inside that plugin's code (segfault, abort, watchdog kill), so systemd's
//   restart brings the daemon back without it.
// This module never opens or calls a plugin, and never decides when one is failing.
#pragma once

#include "model.hpp"
#include "plugin_host.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ews {

struct QuarantineEntry {
    std::filesystem::path file;
    std::string plugin;       // the plugin's name when known, else ""
    FileIdentity identity;    // the version that failed
    std::string reason;       // e.g. "crashed the daemon (marker left by pid 812 at ...)"
    TimePoint since{};
};

// Not thread-safe: used by the thread that loads and evaluates.
class Quarantine {
public:
    // Reads STATE_DIR/quarantine.json when it exists. A file that cannot be read or parsed is
    // logged, renamed to quarantine.json.unreadable and otherwise ignored (the quarantine
    // starts empty): losing it costs at most another crash, which quarantines again.
    explicit Quarantine(const std::filesystem::path& state_dir);

    // Returns: the reason `file` is held, while it is quarantined and its identity is the
    // quarantined one; nullopt otherwise (also when the file cannot be read).
    std::optional<std::string> reason_for(const std::filesystem::path& file) const;

    // Drops the entries whose file is gone or is another version now, saves, and returns
    // them so the caller can log each lift.
    std::vector<QuarantineEntry> lift_changed();

    // Adds `entry`, replacing an entry for the same file, and saves.
    void add(QuarantineEntry entry);

    // Both save quarantine.json at once (temp file, fsync, rename). When it cannot be
    // written, that is logged and the change holds in memory only, until this process ends.

    const std::vector<QuarantineEntry>& entries() const { return entries_; }
    const std::filesystem::path& path() const { return path_; }

private:
    void save() const noexcept;

    std::filesystem::path path_;
    std::vector<QuarantineEntry> entries_;
};

// What a process left in plugin-call.marker: the plugin it was calling when it died.
struct CrashMarker {
    std::string plugin;
    std::filesystem::path file;
    FileIdentity identity;
    long pid = 0;
    TimePoint started{};
    std::string unreadable;  // non-empty (why) when the marker could not be parsed
};

class PluginCallMarker {
public:
    explicit PluginCallMarker(const std::filesystem::path& state_dir);

    // Writes the marker naming `plugin`, whole or not at all (temp file + rename). No fsync:
    // it must outlive a crash of this process, not of the machine.
    // Throws: std::runtime_error naming the file when it cannot be written.
    void enter(const LoadedPlugin& plugin, TimePoint started);
    // Removes the marker. Throws: std::runtime_error when it exists and cannot be removed.
    void leave();

    // Returns: the marker an earlier process left, now removed; nullopt when there is none.
    // Throws: std::runtime_error when it exists and cannot be removed (so it would be
    // found again).
    std::optional<CrashMarker> take_left_over();

    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

}  // namespace ews
