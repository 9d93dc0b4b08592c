#include "state_file.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

namespace ews::sub {

namespace {

std::string errno_text() { return std::strerror(errno); }

// Writes all of `text` to `fd`, resuming after partial writes and interruptions.
bool write_all(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

StateFile::StateFile(std::filesystem::path path, std::string endpoint)
    : path_(std::move(path)), temp_(path_.string() + ".tmp"), endpoint_(std::move(endpoint)) {}

StateFile::~StateFile() {
    if (prepared_) ::unlink(temp_.c_str());
}

std::optional<SavedState> StateFile::load() {
    std::error_code ec;
    const auto status = std::filesystem::status(path_, ec);
    if (ec && ec != std::errc::no_such_file_or_directory)
        throw StateError(path_.string() + ": cannot read: " + ec.message());
    if (!std::filesystem::exists(status)) return std::nullopt;
    if (!std::filesystem::is_regular_file(status))
        throw StateError(path_.string() + ": cannot read: not a regular file");
    std::ifstream in(path_, std::ios::binary);
    if (!in) throw StateError(path_.string() + ": cannot read: " + errno_text());
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) throw StateError(path_.string() + ": cannot read: " + errno_text());
    std::string text = buffer.str();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(0, 1);

    SavedState state;
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos && text.size() <= 19) {
        state.seq = std::stoull(text);
    } else {
        const auto j = nlohmann::json::parse(text, nullptr, false);
        if (!j.is_object() || j.value("schema", "") != "ews-sub.state/1" || !j.contains("seq") ||
            !j["seq"].is_number_unsigned())
            throw StateError(path_.string() +
                             ": malformed: expected {\"schema\":\"ews-sub.state/1\",\"seq\":N,...} or a "
                             "seq number");
        state.seq = j["seq"].get<std::uint64_t>();
        if (j.contains("endpoint") && j["endpoint"].is_string()) state.endpoint = j["endpoint"].get<std::string>();
    }
    saved_ = state.seq;
    return state;
}

void StateFile::probe() {
    const int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw StateError(temp_.string() + ": cannot write: " + errno_text());
    ::close(fd);
    ::unlink(temp_.c_str());
}

void StateFile::prepare(std::uint64_t seq) {
    const std::string text =
        nlohmann::json{{"schema", "ews-sub.state/1"}, {"endpoint", endpoint_}, {"seq", seq}}.dump() + "\n";
    const int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw StateError(temp_.string() + ": cannot write: " + errno_text());
    // Synced before the rename, so that after a power cut the file holds the old state or
    // the new one, never an empty one.
    if (!write_all(fd, text) || ::fdatasync(fd) != 0) {
        const std::string why = errno_text();
        ::close(fd);
        ::unlink(temp_.c_str());
        throw StateError(temp_.string() + ": cannot write: " + why);
    }
    if (::close(fd) != 0) throw StateError(temp_.string() + ": cannot write: " + errno_text());
    prepared_ = seq;
}

void StateFile::commit() {
    if (!prepared_) return;
    if (::rename(temp_.c_str(), path_.c_str()) != 0)
        throw StateError(path_.string() + ": cannot replace with " + temp_.string() + ": " + errno_text());
    saved_ = prepared_;
    prepared_.reset();
}

}  // namespace ews::sub
