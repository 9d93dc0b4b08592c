#include "curve.hpp"

#include <spdlog/spdlog.h>
#include <zmq_addon.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>

namespace fs = std::filesystem;

namespace ews::curve {

namespace {

// A certificate is a few hundred bytes; anything this large is not one.
constexpr std::uintmax_t max_certificate_bytes = 64 * 1024;
// RFC 27: the endpoint every ZAP handler of a context binds.
constexpr const char* zap_endpoint = "inproc://zeromq.zap.01";
// How long the handler thread waits for a request before it looks at its stop flag.
constexpr std::chrono::milliseconds poll_interval{100};
// Repeats of one (domain, key, outcome) within this window are counted, not logged.
constexpr std::chrono::seconds log_window{60};
constexpr std::size_t curve_key_bytes = 32;

constexpr std::string_view z85_alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

std::string trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(first, last - first + 1));
}

bool is_z85_key(std::string_view s) {
    return s.size() == z85_key_length &&
           std::all_of(s.begin(), s.end(), [](char c) { return z85_alphabet.find(c) != std::string_view::npos; });
}

// Returns: an empty string when `key` is a valid Z85 CURVE key, else why not.
std::string key_problem(std::string_view key) {
    if (key.size() != z85_key_length)
        return "expected a " + std::to_string(z85_key_length) + "-character Z85 key, found " +
               std::to_string(key.size()) + " characters";
    for (char c : key)
        if (z85_alphabet.find(c) == std::string_view::npos)
            return std::string("character '") + c + "' is not Z85";
    std::array<std::uint8_t, curve_key_bytes> raw{};
    const std::string z(key);
    if (zmq_z85_decode(raw.data(), z.c_str()) == nullptr) return "not a valid Z85 key";
    return {};
}

std::string z85_of(const void* bytes) {
    std::array<char, z85_key_length + 1> out{};
    if (zmq_z85_encode(out.data(), static_cast<const std::uint8_t*>(bytes), curve_key_bytes) == nullptr)
        throw std::runtime_error("zmq_z85_encode failed");
    return std::string(out.data(), z85_key_length);
}

std::string local_time_text() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&now, &tm);
    std::array<char, 64> buf{};
    std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &tm);
    return buf.data();
}

// The text of a certificate in the layout czmq and pyzmq write, so that both read it.
std::string certificate_text(const std::string& name, const Certificate& c, bool with_secret) {
    std::ostringstream out;
    out << "#   ****  Generated on " << local_time_text() << " by ewsctl keygen  ****\n";
    if (with_secret) {
        out << "#   ZeroMQ CURVE **Secret** Certificate\n"
            << "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n";
    } else {
        out << "#   ZeroMQ CURVE Public Certificate\n"
            << "#   Exchange securely, or use a secure mechanism to verify the contents\n"
            << "#   of this file after exchange.\n";
    }
    out << "#   Name: " << name << "\n\n"
        << "metadata\n"
        << "curve\n"
        << "    public-key = \"" << c.public_key << "\"\n";
    if (with_secret) out << "    secret-key = \"" << *c.secret_key << "\"\n";
    return out.str();
}

// Creates `path` with exactly `mode` (O_EXCL: never an existing file, never a symlink's
// target) and writes `text`. Throws: std::runtime_error naming the path.
void write_new_file(const fs::path& path, const std::string& text, mode_t mode) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        const int err = errno;
        if (err == EEXIST) throw std::runtime_error(path.string() + ": exists; refusing to overwrite it");
        throw std::runtime_error(path.string() + ": cannot create: " + std::strerror(err));
    }
    auto fail = [&](const char* what) {
        const int err = errno;
        ::close(fd);
        ::unlink(path.c_str());
        throw std::runtime_error(path.string() + ": " + what + ": " + std::strerror(err));
    };
    // The umask may have narrowed the mode; set it exactly (never wider than asked).
    if (::fchmod(fd, mode) != 0) fail("cannot set its mode");
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot write");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) fail("cannot sync");
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(path.c_str());
        throw std::runtime_error(path.string() + ": cannot write: " + std::strerror(err));
    }
}

void ensure_private_dir(const fs::path& dir) {
    std::error_code ec;
    if (fs::is_directory(dir, ec)) return;
    if (!dir.parent_path().empty() && !fs::exists(dir.parent_path(), ec)) {
        fs::create_directories(dir.parent_path(), ec);
        if (ec) throw std::runtime_error(dir.parent_path().string() + ": cannot create: " + ec.message());
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::runtime_error(dir.string() + ": cannot create: " + std::strerror(errno));
    if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir.string() + ": not a directory");
}

bool valid_name(const std::string& name) {
    static const std::regex pattern("[A-Za-z0-9_.-]+");
    return !name.empty() && name.front() != '.' && std::regex_match(name, pattern);
}

}  // namespace

Certificate generate() {
    if (!zmq_has("curve")) throw std::runtime_error("this libzmq was built without CURVE");
    std::array<char, z85_key_length + 1> public_key{};
    std::array<char, z85_key_length + 1> secret_key{};
    if (zmq_curve_keypair(public_key.data(), secret_key.data()) != 0)
        throw std::runtime_error(std::string("zmq_curve_keypair failed: ") + zmq_strerror(zmq_errno()));
    return Certificate{std::string(public_key.data(), z85_key_length),
                       std::string(secret_key.data(), z85_key_length)};
}

KeyFiles write_certificate(const fs::path& dir, const std::string& name, const Certificate& certificate) {
    if (!valid_name(name))
        throw std::invalid_argument("bad key name '" + name +
                                    "': use letters, digits, '_', '.' and '-', not starting with '.'");
    if (!certificate.secret_key) throw std::invalid_argument("certificate '" + name + "' has no secret key");
    if (auto p = key_problem(certificate.public_key); !p.empty()) throw std::invalid_argument("public key: " + p);
    if (auto p = key_problem(*certificate.secret_key); !p.empty()) throw std::invalid_argument("secret key: " + p);

    const fs::path base = dir.empty() ? fs::path(".") : dir;
    KeyFiles files{base / (name + ".key"), base / (name + ".key_secret")};
    // Both are checked before either is written, so a refusal leaves nothing half made.
    for (const auto& f : {files.public_file, files.secret_file}) {
        std::error_code ec;
        if (fs::exists(fs::symlink_status(f, ec)))
            throw std::runtime_error(f.string() + ": exists; refusing to overwrite it");
    }
    ensure_private_dir(base);
    write_new_file(files.secret_file, certificate_text(name, certificate, true), 0600);
    try {
        write_new_file(files.public_file, certificate_text(name, certificate, false), 0644);
    } catch (...) {
        ::unlink(files.secret_file.c_str());
        throw;
    }
    return files;
}

Certificate read_certificate(const fs::path& file) {
    const std::string where = file.string();
    std::ifstream in(file, std::ios::binary);
    std::error_code ec;
    if (!in || fs::is_directory(file, ec))
        throw std::runtime_error(where + ": cannot read: " +
                                 (fs::is_directory(file, ec) ? std::string("is a directory")
                                                             : std::string(std::strerror(errno))));
    const auto size = fs::file_size(file, ec);
    if (!ec && size > max_certificate_bytes)
        throw std::runtime_error(where + ": cannot read: larger than " + std::to_string(max_certificate_bytes) +
                                 " bytes, not a certificate");

    auto fail = [&](std::size_t line, const std::string& reason) -> std::runtime_error {
        return std::runtime_error(where + ":" + std::to_string(line) + ": " + reason);
    };

    std::optional<std::string> public_key;
    std::optional<std::string> secret_key;
    std::size_t public_line = 0;
    std::size_t secret_line = 0;
    std::size_t bare_lines = 0;      // lines that were neither comment nor `name = value`
    std::size_t assignments = 0;     // `name = value` lines
    std::optional<std::string> bare_key;
    std::size_t bare_key_line = 0;
    std::size_t line_no = 0;
    std::string raw;
    while (std::getline(in, raw)) {
        ++line_no;
        const std::string line = trim(raw);
        if (line.empty() || line.front() == '#') continue;
        // In a bare key file, the key itself ('=' is a Z85 character, so this comes first).
        std::string candidate = line;
        if (candidate.size() == z85_key_length + 2 && (candidate.front() == '"' || candidate.front() == '\'') &&
            candidate.back() == candidate.front())
            candidate = candidate.substr(1, z85_key_length);
        if (is_z85_key(candidate)) {
            ++bare_lines;
            if (!bare_key) {
                bare_key = candidate;
                bare_key_line = line_no;
            }
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string::npos) {
            // A section name (`curve`, `metadata`).
            if (line.find_first_of(" \t") != std::string::npos)
                throw fail(line_no, "expected a section name or 'name = value', found '" + line + "'");
            ++bare_lines;
            continue;
        }
        ++assignments;
        const std::string name = trim(std::string_view(line).substr(0, eq));
        std::string value = trim(std::string_view(line).substr(eq + 1));
        if (name.empty()) throw fail(line_no, "expected 'name = value', the name is missing");
        if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
            if (value.size() < 2 || value.back() != value.front())
                throw fail(line_no, "unterminated quoted value for '" + name + "'");
            value = value.substr(1, value.size() - 2);
        }
        if (name == "public-key" || name == "secret-key") {
            if (auto p = key_problem(value); !p.empty()) throw fail(line_no, name + ": " + p);
            auto& slot = name == "public-key" ? public_key : secret_key;
            auto& slot_line = name == "public-key" ? public_line : secret_line;
            if (slot) throw fail(line_no, name + " given twice (first at line " + std::to_string(slot_line) + ")");
            slot = value;
            slot_line = line_no;
        }
        // Other names (metadata) are kept by nobody: ewsd names a key by its file.
    }
    if (in.bad()) throw std::runtime_error(where + ": cannot read: " + std::strerror(errno));

    if (!public_key && assignments == 0 && bare_key && bare_lines == 1) {
        public_key = bare_key;
        public_line = bare_key_line;
    }
    if (!public_key) {
        if (secret_key) throw fail(secret_line, "secret-key without a public-key");
        throw fail(std::max<std::size_t>(line_no, 1),
                   "no public key: expected 'public-key = \"<40 Z85 characters>\"' in a 'curve' section, "
                   "or a file holding only the key");
    }
    if (secret_key) {
        std::array<char, z85_key_length + 1> derived{};
        if (zmq_curve_public(derived.data(), secret_key->c_str()) != 0)
            throw fail(secret_line, "secret-key: not a valid CURVE secret key");
        if (std::string(derived.data(), z85_key_length) != *public_key)
            throw fail(secret_line, "secret-key does not belong to the public-key of line " +
                                        std::to_string(public_line));
    }
    return Certificate{*public_key, secret_key};
}

AuthorizedKeys load_authorized(const fs::path& dir) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) throw std::runtime_error(dir.string() + ": cannot list authorized keys: " + ec.message());
    std::vector<fs::path> files;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) throw std::runtime_error(dir.string() + ": cannot list authorized keys: " + ec.message());
        const fs::path& p = it->path();
        const std::string filename = p.filename().string();
        if (filename.empty() || filename.front() == '.' || p.extension() != ".key") continue;
        std::error_code sec;
        if (!it->is_regular_file(sec)) continue;
        files.push_back(p);
    }
    if (ec) throw std::runtime_error(dir.string() + ": cannot list authorized keys: " + ec.message());
    std::sort(files.begin(), files.end());  // the same key in two files: the first name wins

    AuthorizedKeys out;
    std::map<std::string, fs::path> file_by_key;
    for (const auto& f : files) {
        try {
            const Certificate c = read_certificate(f);
            const std::string name = f.stem().string();
            auto [pos, inserted] = out.name_by_key.emplace(c.public_key, name);
            if (!inserted) {
                out.problems.push_back(f.string() + ":1: same public key as " + file_by_key[c.public_key].string() +
                                       "; skipped, the key is named '" + pos->second + "'");
                continue;
            }
            file_by_key.emplace(c.public_key, f);
        } catch (const std::runtime_error& e) {
            out.problems.emplace_back(e.what());
        }
    }
    return out;
}

void make_server(zmq::socket_t& socket, const Certificate& server, const std::string& domain) {
    if (!server.secret_key) throw std::invalid_argument("the server certificate has no secret key");
    socket.set(zmq::sockopt::curve_server, true);
    socket.set(zmq::sockopt::curve_secretkey, *server.secret_key);
    socket.set(zmq::sockopt::zap_domain, domain);
}

void make_client(zmq::socket_t& socket, const std::string& server_public_key, const Certificate& client) {
    if (!client.secret_key) throw std::invalid_argument("the client certificate has no secret key");
    socket.set(zmq::sockopt::curve_serverkey, server_public_key);
    socket.set(zmq::sockopt::curve_publickey, client.public_key);
    socket.set(zmq::sockopt::curve_secretkey, *client.secret_key);
}

// ---- ZapHandler ---------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

// What identifies a directory's contents cheaply: every NAME.key file's name, size and
// modification time, and the directory's own modification time. Any change reloads.
using DirectorySignature = std::vector<std::tuple<std::string, std::uintmax_t, fs::file_time_type>>;

// Throws: std::runtime_error naming the directory when it cannot be listed.
DirectorySignature signature_of(const fs::path& dir) {
    std::error_code ec;
    DirectorySignature sig;
    const auto dir_time = fs::last_write_time(dir, ec);
    if (ec) throw std::runtime_error(dir.string() + ": cannot list authorized keys: " + ec.message());
    sig.emplace_back(std::string(), 0, dir_time);
    fs::directory_iterator it(dir, ec);
    if (ec) throw std::runtime_error(dir.string() + ": cannot list authorized keys: " + ec.message());
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) break;
        const fs::path& p = it->path();
        if (p.extension() != ".key") continue;
        std::error_code fec;
        const auto size = fs::file_size(p, fec);
        const auto time = fs::last_write_time(p, fec);
        sig.emplace_back(p.filename().string(), fec ? 0 : size, fec ? fs::file_time_type{} : time);
    }
    if (ec) throw std::runtime_error(dir.string() + ": cannot list authorized keys: " + ec.message());
    std::sort(sig.begin(), sig.end());
    return sig;
}

struct Domain {
    fs::path dir;
    DirectorySignature signature;
    AuthorizedKeys keys;
    bool loaded = false;
};

void log_problems(const std::string& domain, const fs::path& dir, const AuthorizedKeys& keys) {
    for (const auto& p : keys.problems) spdlog::warn("curve: domain {}: key file skipped: {}", domain, p);
    spdlog::info("curve: domain {}: {} authorized key(s) in {}", domain, keys.name_by_key.size(), dir.string());
}

// Throws: std::runtime_error naming the directory when it cannot be listed.
void refresh(const std::string& name, Domain& d) {
    DirectorySignature sig = signature_of(d.dir);
    if (d.loaded && sig == d.signature) return;
    AuthorizedKeys keys = load_authorized(d.dir);
    log_problems(name, d.dir, keys);
    d.keys = std::move(keys);
    d.signature = std::move(sig);
    d.loaded = true;
}

std::map<std::string, Domain> load_domains(const std::map<std::string, fs::path>& domains) {
    std::map<std::string, Domain> out;
    for (const auto& [name, dir] : domains) {
        Domain d;
        d.dir = dir;
        refresh(name, d);
        out.emplace(name, std::move(d));
    }
    return out;
}

}  // namespace

struct ZapHandler::Impl {
    zmq::socket_t socket;
    std::thread thread;
    std::atomic<bool> stop{false};

    mutable std::mutex mutex;                // guards domains and counts
    std::map<std::string, Domain> domains;
    std::map<std::string, Counts> counts;

    // Log throttle, used by the handler thread only.
    struct LogEntry {
        Clock::time_point logged;
        std::uint64_t repeats = 0;
        std::string who;  // NAME or Z85 as logged
    };
    std::map<std::tuple<std::string, std::string, bool>, LogEntry> log_entries;

    Impl(zmq::context_t& context, std::map<std::string, Domain> initial)
        : socket(context, zmq::socket_type::rep), domains(std::move(initial)) {
        for (const auto& [name, d] : domains) counts[name];
        socket.set(zmq::sockopt::linger, 0);
        socket.bind(zap_endpoint);
    }

    void run();
    void handle(std::vector<zmq::message_t>& request);
    void note(const std::string& domain, const std::string& key, const std::string& who,
              const std::string& address, bool admitted, const std::string& reason);
    void flush_log(bool all);
};

void ZapHandler::Impl::note(const std::string& domain, const std::string& key, const std::string& who,
                            const std::string& address, bool admitted, const std::string& reason) {
    {
        std::lock_guard lock(mutex);
        auto& c = counts[domain];
        if (admitted) ++c.admitted;
        else ++c.refused;
    }
    const auto now = Clock::now();
    auto [it, fresh] = log_entries.try_emplace(std::make_tuple(domain, key, admitted), LogEntry{now, 0, who});
    if (!fresh) {
        if (now - it->second.logged < log_window) {
            ++it->second.repeats;
            return;
        }
    }
    const std::string repeats =
        !fresh && it->second.repeats > 0
            ? fmt::format(" ({} more since {}s ago, not logged)", it->second.repeats,
                          std::chrono::duration_cast<std::chrono::seconds>(now - it->second.logged).count())
            : std::string();
    if (admitted)
        spdlog::info("curve: domain {}: admitted {} from {}{}", domain, who, address, repeats);
    else
        spdlog::warn("curve: domain {}: refused {} from {}: {}{}", domain, who, address, reason, repeats);
    it->second.logged = now;
    it->second.repeats = 0;
}

void ZapHandler::Impl::flush_log(bool all) {
    const auto now = Clock::now();
    for (auto it = log_entries.begin(); it != log_entries.end();) {
        if (!all && now - it->second.logged < log_window) {
            ++it;
            continue;
        }
        const auto& [domain, key, admitted] = it->first;
        if (it->second.repeats > 0)
            spdlog::log(admitted ? spdlog::level::info : spdlog::level::warn,
                        "curve: domain {}: {} {} {} more time(s) in the last {}s", domain,
                        admitted ? "admitted" : "refused", it->second.who, it->second.repeats,
                        std::chrono::duration_cast<std::chrono::seconds>(now - it->second.logged).count());
        it = log_entries.erase(it);
    }
}

void ZapHandler::Impl::handle(std::vector<zmq::message_t>& request) {
    // RFC 27 request: version, request id, domain, address, identity, mechanism, credentials...
    auto frame = [&](std::size_t i) { return i < request.size() ? request[i].to_string() : std::string(); };
    const std::string version = frame(0);
    const std::string request_id = frame(1);
    const std::string domain = frame(2);
    const std::string address = frame(3);
    const std::string mechanism = frame(5);

    std::string status = "400";
    std::string status_text;
    std::string user_id;
    if (request.size() < 6 || version != "1.0") {
        status_text = "malformed ZAP request";
        spdlog::error("curve: malformed ZAP request ({} frames, version '{}'), refused", request.size(), version);
        std::lock_guard lock(mutex);
        ++counts[domain].refused;
    } else if (mechanism != "CURVE" || request.size() != 7 || request[6].size() != curve_key_bytes) {
        status_text = "CURVE required";
        note(domain, "mechanism:" + mechanism, "a " + mechanism + " client", address, false,
             "mechanism " + mechanism + ", CURVE required");
    } else {
        const std::string key = z85_of(request[6].data());
        std::optional<std::string> name;
        std::string reason;
        {
            std::lock_guard lock(mutex);
            auto d = domains.find(domain);
            if (d == domains.end()) {
                reason = "unknown domain";
            } else {
                try {
                    refresh(d->first, d->second);
                    auto k = d->second.keys.name_by_key.find(key);
                    if (k != d->second.keys.name_by_key.end()) name = k->second;
                    else reason = "key not in " + d->second.dir.string();
                } catch (const std::runtime_error& e) {
                    // Fail closed: a directory that cannot be read admits nobody.
                    d->second.loaded = false;
                    d->second.keys = AuthorizedKeys{};
                    reason = e.what();
                }
            }
        }
        if (name) {
            status = "200";
            status_text = "OK";
            user_id = *name;
            note(domain, key, *name, address, true, {});
        } else {
            status_text = "not authorized";
            note(domain, key, "key " + key, address, false, reason);
        }
    }

    std::array<zmq::const_buffer, 6> reply{zmq::buffer(std::string_view("1.0")), zmq::buffer(request_id),
                                           zmq::buffer(status),  zmq::buffer(status_text),
                                           zmq::buffer(user_id), zmq::const_buffer()};
    zmq::send_multipart(socket, reply);
}

void ZapHandler::Impl::run() {
    auto last_flush = Clock::now();
    while (!stop.load()) {
        try {
            std::array<zmq::pollitem_t, 1> items{{{socket.handle(), 0, ZMQ_POLLIN, 0}}};
            zmq::poll(items.data(), items.size(), poll_interval);
            if (items[0].revents & ZMQ_POLLIN) {
                std::vector<zmq::message_t> request;
                if (zmq::recv_multipart(socket, std::back_inserter(request), zmq::recv_flags::dontwait)) {
                    try {
                        handle(request);
                    } catch (const std::exception& e) {
                        // The REP socket must answer before it can read the next request.
                        spdlog::error("curve: ZAP request failed, refused: {}", e.what());
                        const std::string id = request.size() > 1 ? request[1].to_string() : std::string();
                        std::array<zmq::const_buffer, 6> reply{
                            zmq::buffer(std::string_view("1.0")), zmq::buffer(id),
                            zmq::buffer(std::string_view("500")), zmq::buffer(std::string_view("internal error")),
                            zmq::const_buffer(), zmq::const_buffer()};
                        zmq::send_multipart(socket, reply);
                    }
                }
            }
        } catch (const zmq::error_t& e) {
            if (e.num() == ETERM) break;
            spdlog::error("curve: ZAP handler: {}", e.what());
        }
        if (Clock::now() - last_flush >= std::chrono::seconds(1)) {
            flush_log(false);
            last_flush = Clock::now();
        }
    }
    flush_log(true);
}

ZapHandler::ZapHandler(zmq::context_t& context, std::map<std::string, fs::path> domains)
    : impl_(std::make_unique<Impl>(context, load_domains(domains))) {
    impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

ZapHandler::~ZapHandler() {
    impl_->stop.store(true);
    if (impl_->thread.joinable()) impl_->thread.join();
}

void ZapHandler::set_domains(std::map<std::string, fs::path> domains) {
    std::map<std::string, Domain> next = load_domains(domains);
    std::lock_guard lock(impl_->mutex);
    for (const auto& [name, d] : next) impl_->counts[name];
    impl_->domains = std::move(next);
}

std::map<std::string, ZapHandler::Counts> ZapHandler::counts() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->counts;
}

}  // namespace ews::curve
