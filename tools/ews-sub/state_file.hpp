// state_file.hpp: where a subscriber has got to, kept across its own restarts.
//
// The file holds the last seq ews-sub has handled (printed, or passed over by its filters),
// so that a restarted ews-sub replays from the next one and prints every event exactly once.
// It is replaced atomically: the new content is written and synced to FILE.tmp in the same
// directory before a batch is printed, and renamed over FILE right after the batch is
// written, so the file always holds one complete state, the old one or the new one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace ews::sub {

// The state file cannot be read, parsed or written: ews-sub exits with status 3.
class StateError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct SavedState {
    std::uint64_t seq = 0;
    std::string endpoint;  // the alert endpoint it was written for; empty when not recorded
};

class StateFile {
public:
    // `endpoint` is recorded in the file, so that a state used with another endpoint is noticed.
    StateFile(std::filesystem::path path, std::string endpoint);
    ~StateFile();
    StateFile(const StateFile&) = delete;
    StateFile& operator=(const StateFile&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // Returns: the saved state, or nullopt when the file does not exist. Accepts what save()
    // writes ({"schema":"ews-sub.state/1","endpoint":...,"seq":N}) or a bare seq number.
    // Throws: StateError "FILE: reason" when it exists but cannot be read or is malformed.
    std::optional<SavedState> load();

    // Checks that the directory takes the temporary file (created, then removed).
    // Throws: StateError.
    void probe();

    // Writes `seq` to FILE.tmp and syncs it. Throws: StateError.
    void prepare(std::uint64_t seq);
    // Renames FILE.tmp over FILE (after prepare()). Throws: StateError.
    void commit();

    // Returns: the seq of the last commit() or load(), if any.
    std::optional<std::uint64_t> saved() const { return saved_; }

private:
    std::filesystem::path path_;
    std::filesystem::path temp_;
    std::string endpoint_;
    std::optional<std::uint64_t> saved_;
    std::optional<std::uint64_t> prepared_;
};

}  // namespace ews::sub
