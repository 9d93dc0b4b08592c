// curve.hpp: CURVE keys and the ZAP handler that admits only authorized client keys.
//
// ZeroMQ's CURVE encrypts and authenticates, but without a ZAP handler a CURVE server admits
// every client key. ewsd therefore runs one ZapHandler per context: each server socket with
// CURVE carries a ZAP domain (the endpoint's name), and the handler admits a client only when
// its public key is a file in that domain's authorized-keys directory.
//
// Key files use ZeroMQ's certificate format (zcert), which pyzmq's zmq.auth also reads and
// writes:
//
//   NAME.key          public certificate, mode 0644:   curve\n    public-key = "<Z85>"
//   NAME.key_secret   secret certificate, mode 0600:   the same plus  secret-key = "<Z85>"
//
// An authorized-keys directory holds one NAME.key per subscriber; NAME is how the logs and
// status name that subscriber.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ews::curve {

// A Z85-encoded CURVE key: 40 characters.
inline constexpr std::size_t z85_key_length = 40;

struct Certificate {
    std::string public_key;                 // Z85
    std::optional<std::string> secret_key;  // Z85; only in a secret certificate
};

// Returns: a new key pair (zmq_curve_keypair). Throws: std::runtime_error when libzmq was
// built without CURVE.
Certificate generate();

struct KeyFiles {
    std::filesystem::path public_file;  // dir/NAME.key
    std::filesystem::path secret_file;  // dir/NAME.key_secret
};

// Writes NAME.key (0644) and NAME.key_secret (0600, created with that mode, never wider) into
// `dir` (created 0700 when missing). NAME must match [A-Za-z0-9_.-]+ and not start with '.'.
// Refuses to overwrite either file. Throws: std::invalid_argument (bad name),
// std::runtime_error naming the path (exists, cannot write).
KeyFiles write_certificate(const std::filesystem::path& dir, const std::string& name,
                           const Certificate& certificate);

// Reads a certificate file (zcert: `public-key = "..."`, optional `secret-key = "..."`,
// comments with '#', any indentation; or a file holding just the 40-character Z85 public
// key, quoted when it starts with '#'). A secret key must belong to the public key.
// Throws: std::runtime_error "FILE:LINE: reason" for a malformed file or key, or
// "FILE: cannot read: ..." when missing.
Certificate read_certificate(const std::filesystem::path& file);

// The authorized keys of a directory: every regular NAME.key file (hidden files skipped).
struct AuthorizedKeys {
    std::map<std::string, std::string> name_by_key;  // Z85 public key -> NAME
    std::vector<std::string> problems;  // "FILE:LINE: reason" for files that were skipped
};
// Throws: std::runtime_error naming the directory when it cannot be listed.
AuthorizedKeys load_authorized(const std::filesystem::path& dir);

// Makes `socket` a CURVE server with `server`'s secret key and ZAP domain `domain`. Call
// before bind(). Throws: std::invalid_argument when the certificate has no secret key.
void make_server(zmq::socket_t& socket, const Certificate& server, const std::string& domain);
// Makes `socket` a CURVE client of the server whose public key is `server_public_key` (Z85),
// with the client's own certificate (which needs its secret key). Call before connect().
void make_client(zmq::socket_t& socket, const std::string& server_public_key,
                 const Certificate& client);

// Answers ZAP requests (RFC 27) on inproc://zeromq.zap.01 of `context` on its own thread.
// Domains map to authorized-keys directories. A request is admitted (status 200, user id =
// the key's NAME) only for mechanism CURVE, a known domain, and a public key found in that
// domain's directory, which is read again whenever it or one of its NAME.key files changed
// (name, size or modification time), so adding, removing or replacing a key file takes effect
// for the next connection; a directory that cannot be read admits nobody. Everything else is refused
// (400), including requests for domains it does not know. Each admission and refusal is
// logged (spdlog, info and warn) with the domain, the key's NAME (or, unknown, its Z85) and
// the peer address; repeats of the same (domain, key, outcome) within a minute are counted
// rather than logged.
class ZapHandler {
public:
    struct Counts {
        std::uint64_t admitted = 0;
        std::uint64_t refused = 0;
    };

    // Binds the ZAP endpoint before returning (so sockets made afterwards are covered) and
    // starts the thread. Throws: zmq::error_t when another handler is bound in `context`;
    // std::runtime_error naming a directory that cannot be listed.
    ZapHandler(zmq::context_t& context, std::map<std::string, std::filesystem::path> domains);
    ~ZapHandler();  // stops the thread and closes its socket
    ZapHandler(const ZapHandler&) = delete;
    ZapHandler& operator=(const ZapHandler&) = delete;

    // Replaces the domain table (on reload); thread-safe. Counts of every domain are kept.
    // Throws: std::runtime_error naming a directory that cannot be listed (the old table stays).
    void set_domains(std::map<std::string, std::filesystem::path> domains);
    // Admissions and refusals so far, per domain; thread-safe.
    std::map<std::string, Counts> counts() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ews::curve
