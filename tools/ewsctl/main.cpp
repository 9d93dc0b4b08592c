// ewsctl: the operator's command-line tool. Commands that change data go through the running
// daemon when there is one (the ingest endpoint or the spool directory, its control socket, a
// reload signal); otherwise ewsctl opens the store itself. See `ewsctl --help`.
#include "backtest.hpp"
#include "config.hpp"
#include "control.hpp"
#include "curve.hpp"
#include "db_commands.hpp"
#include "gen_demo.hpp"
#include "ingest.hpp"
#include "ingest_endpoint.hpp"
#include "pipeline.hpp"
#include "plugin_test.hpp"
#include "relay.hpp"
#include "report_commands.hpp"
#include "store.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sys/file.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace ews;

namespace {

// Returns: the pid of the daemon holding STATE_DIR/ewsd.lock, or 0 when none does.
pid_t running_daemon(const Config& config) {
    auto path = config.state_dir / "ewsd.lock";
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    pid_t pid = 0;
    if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
        char buf[32] = {};
        if (::pread(fd, buf, sizeof buf - 1, 0) > 0) pid = static_cast<pid_t>(std::atol(buf));
        if (pid <= 0) pid = -1;
    } else {
        ::flock(fd, LOCK_UN);
    }
    ::close(fd);
    return pid;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error(p.string() + ": cannot read: " + std::strerror(errno));
    return {std::istreambuf_iterator<char>(in), {}};
}

// Returns: the endpoint to connect to for a bind address (a wildcard bind address is
// reached on loopback).
std::string connect_endpoint(const std::string& bind) {
    std::string endpoint = bind;
    for (const char* any : {"tcp://*:", "tcp://0.0.0.0:"})
        if (endpoint.starts_with(any)) endpoint = "tcp://127.0.0.1:" + endpoint.substr(std::strlen(any));
    return endpoint;
}

// What `ewsctl ingest` prints for one file: each rejected row, then a summary line.
struct IngestSummary {
    std::size_t accepted = 0;
    std::size_t rejected = 0;
    bool committed = false;
    bool duplicate = false;
};

// Returns: 1 when a row was rejected, else 0.
int print_summary(const std::string& label, const IngestSummary& s, const std::string& where) {
    if (s.duplicate)
        std::cout << label << ": already ingested, nothing changed" << where << "\n";
    else
        std::cout << label << ": " << s.accepted << " rows committed, " << s.rejected << " rejected"
                  << (s.committed ? "" : " (file rejected, nothing committed)") << where << "\n";
    return s.rejected > 0 ? 1 : 0;
}

// Sends `content` to the daemon's ingest endpoint as one batch and waits up to 30 s.
// Returns: the reply. Throws: std::runtime_error when no reply comes.
nlohmann::json push_batch(const std::string& endpoint, const IngestHeader& header,
                          std::string_view content) {
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::req);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::sndtimeo, 30000);
    s.set(zmq::sockopt::rcvtimeo, 30000);
    s.connect(endpoint);
    const std::string head = ingest_header_json(header);
    if (!s.send(zmq::buffer(head), zmq::send_flags::sndmore) ||
        !s.send(zmq::const_buffer(content.data(), content.size())))
        throw std::runtime_error("cannot send to " + endpoint + " within 30 s");
    zmq::message_t reply;
    if (!s.recv(reply))
        throw std::runtime_error("no reply from the ingest endpoint " + endpoint +
                                 " within 30 s (is ewsd running with this [ingest] bind?)");
    return nlohmann::json::parse(reply.to_string_view());
}

// Pushes one file through the running daemon's ingest endpoint and prints its reply.
// Returns: 1 when anything was rejected or refused.
int ingest_through_endpoint(const Config& config, const std::string& label, IngestFormat format,
                            const std::string& content, pid_t daemon) {
    IngestHeader header;
    header.format = format;
    header.name = label.size() <= 200 ? label : fs::path(label).filename().string().substr(0, 200);
    // The same policy as for files in the spool or ingested without a daemon.
    header.policy = config.policy;
    const auto reply = push_batch(connect_endpoint(config.ingest_bind), header, content);
    if (reply.contains("error")) {
        std::cout << label << ": refused by the daemon: " << reply["error"].get<std::string>() << "\n";
        return 1;
    }
    IngestSummary s;
    s.accepted = reply.value("accepted", std::size_t(0));
    s.rejected = reply.value("rejected_total", std::size_t(0));
    s.committed = reply.value("committed", false);
    s.duplicate = reply.value("duplicate", false);
    std::size_t listed = 0;
    for (const auto& r : reply.value("rejected", nlohmann::json::array())) {
        RowError e{label, r.value("line", std::size_t(0)), r.value("column", std::size_t(0)),
                   r.value("reason", std::string())};
        std::cout << e.format() << "\n";
        ++listed;
    }
    if (listed < s.rejected)
        std::cout << label << ": " << s.rejected - listed << " more rejected rows not listed\n";
    return print_summary(label, s, " by the running daemon (pid " + std::to_string(daemon) + ")");
}

// `ewsctl ingest`: through the running daemon's ingest endpoint when [ingest] bind is set,
// else into its spool; without a daemon, straight into the store. Files ending in ".jsonl"
// are JSON Lines; stdin ('-') and other files are read as `stdin_format`. [ingest] policy
// applies on every path. Returns: 1 when any row was rejected.
int cmd_ingest(const Config& config, const std::vector<std::string>& files, IngestFormat stdin_format) {
    int status = 0;
    const pid_t daemon = running_daemon(config);
    std::optional<Store> store;  // opened when first needed: not on the endpoint path
    std::set<std::string> known;
    auto rules = [&] {
        if (!store) {
            store.emplace(config.state_dir / "ewsd.db");
            for (auto& l : store->localities()) known.insert(l.id);
        }
        return ObservationRules{[&](std::string_view id) { return known.contains(std::string(id)); },
                                wall_now(), config.future_tolerance};
    };
    for (const auto& f : files) {
        const bool from_stdin = f == "-";
        const std::string content = from_stdin ? std::string{std::istreambuf_iterator<char>(std::cin), {}}
                                               : read_file(f);
        const std::string label = from_stdin ? "stdin" : f;
        const IngestFormat format = from_stdin ? stdin_format : format_of(f).value_or(stdin_format);
        if (daemon != 0 && !config.ingest_bind.empty() && content.size() <= max_ingest_batch_bytes) {
            status |= ingest_through_endpoint(config, label, format, content, daemon);
            continue;
        }
        if (daemon != 0) {
            // The daemon owns the data path: validate here to report every bad row, then hand
            // the file to the daemon's spool (written under a hidden name and renamed in).
            if (!config.ingest_bind.empty())
                std::cout << label << ": larger than the ingest endpoint's limit of "
                          << max_ingest_batch_bytes << " bytes, handed to the spool instead\n";
            auto parsed = parse_observations(content, label, format, rules());
            for (const auto& e : parsed.errors) std::cout << e.format() << "\n";
            if (!parsed.errors.empty()) status = 1;
            fs::create_directories(config.spool_dir);
            const std::string ext = "." + std::string(to_string(format));
            std::string name = from_stdin ? "stdin-" + std::to_string(::getpid()) + ext
                                          : fs::path(f).filename().string();
            if (!name.ends_with(ext)) name += ext;
            auto tmp = config.spool_dir / ("." + name + ".tmp");
            {
                std::ofstream out(tmp, std::ios::binary);
                out << content;
                if (!out.flush()) throw std::runtime_error(tmp.string() + ": cannot write");
            }
            fs::rename(tmp, config.spool_dir / name);
            std::cout << label << ": " << parsed.rows.size() << " rows valid, " << parsed.errors.size()
                      << " rejected; handed to the running daemon (pid " << daemon << ")\n";
            continue;
        }
        const ObservationRules r = rules();  // opens the store
        auto out = ingest_content(content, label, format, *store, r, config.policy);
        for (const auto& e : out.errors) std::cout << e.format() << "\n";
        status |= print_summary(label, {out.rows.size(), out.errors.size(), out.committed, out.duplicate}, "");
    }
    return status;
}

int cmd_localities_import(const Config& config, const std::string& file) {
    auto parsed = parse_localities_csv(read_file(file), file);
    for (const auto& e : parsed.errors) std::cout << e.format() << "\n";
    if (!parsed.errors.empty()) {
        std::cout << file << ": " << parsed.errors.size() << " errors, nothing imported\n";
        return 1;
    }
    fs::create_directories(config.state_dir);
    Store store(config.state_dir / "ewsd.db");
    store.upsert_localities(parsed.rows);
    std::cout << file << ": " << parsed.rows.size() << " localities created or updated\n";
    if (pid_t pid = running_daemon(config); pid > 0) {
        ::kill(pid, SIGHUP);
        std::cout << "asked the running daemon (pid " << pid << ") to reload\n";
    }
    return 0;
}

int cmd_evaluate(const Config& config, const std::string& at) {
    if (pid_t pid = running_daemon(config); pid != 0) {
        std::cerr << "ewsctl: a daemon (pid " << pid << ") owns " << config.state_dir.string()
                  << " and evaluates on its own; use `ewsd --once` only when it is stopped\n";
        return 1;
    }
    TimePoint now = wall_now();
    if (!at.empty()) {
        auto t = parse_time(at);
        if (!t) {
            std::cerr << "ewsctl: --at '" << at << "': expected an RFC 3339 date or UTC date-time\n";
            return 2;
        }
        now = *t;
    }
    Pipeline pipeline(config);
    for (const auto& r : pipeline.plugins().refused)
        std::cerr << "plugin refused: " << r.file.string() << ": " << r.reason << "\n";
    auto rows = pipeline.evaluate(now, true);
    std::cout << "evaluated " << pipeline.last_evaluation().localities_assessed << " localities at "
              << format_time(now) << ": " << rows.size()
              << " events written to the outbox (published by the daemon's replay)\n";
    auto open = pipeline.open_alerts();
    std::cout << "open alerts: " << open[1] << " watch, " << open[2] << " warning, " << open[3]
              << " critical\n";
    return 0;
}

std::string query(const std::string& endpoint, const std::string& request) {
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::req);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::rcvtimeo, 3000);
    s.connect(endpoint);
    s.send(zmq::buffer(request));
    zmq::message_t reply;
    if (!s.recv(reply)) throw std::runtime_error("no answer from " + endpoint + " within 3 s (is ewsd running?)");
    return reply.to_string();
}

// Returns: the endpoint to connect to for the query bind address (a wildcard bind address
// is reached on loopback).
std::string query_endpoint(const Config& config) {
    return connect_endpoint(config.query_bind);
}

// How long ewsctl waits for the daemon's control socket to answer.
constexpr int control_timeout_ms = 10000;

// Sends `request` to the control socket of the daemon (pid `daemon`) that holds the state
// directory. Returns: the reply object. Throws: std::runtime_error when it does not answer.
nlohmann::json ask_daemon(const Config& config, const nlohmann::json& request, pid_t daemon) {
    const fs::path file = control_socket_file(config.state_dir);
    const std::string who = daemon > 0 ? "the running daemon (pid " + std::to_string(daemon) + ")"
                                       : "the daemon holding " + config.state_dir.string();
    // libzmq connects to an ipc endpoint in the background and retries quietly, so a missing
    // or forbidden socket file would only show as a timeout: say what is wrong instead.
    if (!fs::exists(file))
        throw std::runtime_error(who + " offers no control socket at " + file.string() +
                                 " (is it an older ewsd, or a single pass with --once?)");
    if (::access(file.c_str(), R_OK | W_OK) != 0)
        throw std::runtime_error(file.string() + ": " + std::strerror(errno) +
                                 " (run ewsctl as the daemon's user or a member of its group)");
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::req);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::sndtimeo, control_timeout_ms);
    s.set(zmq::sockopt::rcvtimeo, control_timeout_ms);
    s.connect(control_endpoint(config.state_dir));
    const std::string text = request.dump();
    zmq::message_t reply;
    if (!s.send(zmq::buffer(text)) || !s.recv(reply))
        throw std::runtime_error(who + " did not answer on " + control_endpoint(config.state_dir) +
                                 " within " + std::to_string(control_timeout_ms / 1000) + " s");
    return nlohmann::json::parse(reply.to_string_view());
}

// Answers a control request (control.hpp): through the running daemon when there is one, so
// that its in-memory state follows the change; otherwise here, on the store.
nlohmann::json control_request(const Config& config, const nlohmann::json& request) {
    if (const pid_t daemon = running_daemon(config); daemon != 0) return ask_daemon(config, request, daemon);
    Store store(config.state_dir / "ewsd.db");
    StoreControl target(store);
    return nlohmann::json::parse(answer_control(request.dump(), target, wall_now(), {}));
}

// Returns: true when `reply` is an error, after printing it.
bool refused(const nlohmann::json& reply) {
    if (!reply.is_object() || !reply.contains("error")) return false;
    const auto& e = reply["error"];
    std::cerr << "ewsctl: " << (e.is_string() ? e.get<std::string>() : e.dump()) << "\n";
    return true;
}

int cmd_status(const Config& config) {
    // A local daemon answers on its control socket (file permissions, no CURVE needed);
    // otherwise the query endpoint, which must then be reachable without CURVE keys.
    nlohmann::json reply;
    if (const pid_t daemon = running_daemon(config); daemon != 0) {
        reply = ask_daemon(config, {{"op", "status"}}, daemon);
    } else if (!config.query_bind.empty() && !config.query_curve.enabled()) {
        reply = nlohmann::json::parse(query(query_endpoint(config), R"({"op":"status"})"));
    } else {
        std::cerr << "ewsctl: no daemon holds " << config.state_dir.string()
                  << " and no plain (non-CURVE) [query] bind in " << config.file.string()
                  << " to ask one elsewhere\n";
        return 1;
    }
    if (refused(reply)) return 1;
    std::cout << reply.dump(2) << "\n";
    return 0;
}

// Returns: [daemon] state_dir of a configuration file that does not load, read line by line
// (a syntax error elsewhere in the file does not hide it), resolved against the file's
// directory; nullopt when there is none.
std::optional<fs::path> state_dir_of_broken_config(const fs::path& file) {
    std::ifstream in(file);
    std::string line, section;
    while (std::getline(in, line)) {
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        if (line[first] == '[') {
            const auto end = line.find(']', first);
            section = end == std::string::npos ? "" : line.substr(first + 1, end - first - 1);
            continue;
        }
        if (section != "daemon" || line.compare(first, 9, "state_dir") != 0) continue;
        const auto eq = line.find('=', first + 9);
        if (eq == std::string::npos || line.find_first_not_of(" \t", first + 9) != eq) continue;
        const auto open = line.find_first_of("\"'", eq);
        if (open == std::string::npos) return std::nullopt;
        const auto close = line.find(line[open], open + 1);
        if (close == std::string::npos) return std::nullopt;
        const fs::path value = line.substr(open + 1, close - open - 1);
        if (value.empty()) return std::nullopt;
        return value.is_absolute() ? value : fs::absolute(file).parent_path() / value;
    }
    return std::nullopt;
}

// `ewsctl status` with a configuration file that does not load (an operator who sent SIGHUP
// with a broken file asks whether the daemon kept the old one): the error, then the running
// daemon's status from its control socket. Returns: 1 (the file is rejected either way).
int status_despite_broken_config(const fs::path& file) {
    const auto state_dir = state_dir_of_broken_config(file);
    if (!state_dir) return 1;
    Config config;
    config.file = fs::absolute(file);
    config.state_dir = *state_dir;
    const pid_t daemon = running_daemon(config);
    if (daemon == 0) {
        std::cerr << "ewsctl: no daemon holds " << state_dir->string() << "\n";
        return 1;
    }
    std::cerr << "ewsctl: the file above does not load; the running daemon's status:\n";
    try {
        const auto reply = ask_daemon(config, {{"op", "status"}}, daemon);
        if (!refused(reply)) std::cout << reply.dump(2) << "\n";
    } catch (const std::exception& e) {
        std::cerr << "ewsctl: " << e.what() << "\n";
    }
    return 1;
}

struct SilenceAddOptions {
    std::string locality, region, until, reason, by;
};

int cmd_silence_add(const Config& config, const SilenceAddOptions& o) {
    nlohmann::json request = {{"op", "silence_add"}, {"until", o.until}, {"reason", o.reason}, {"by", o.by}};
    if (!o.locality.empty()) request["locality"] = o.locality;
    if (!o.region.empty()) request["region"] = o.region;
    const auto reply = control_request(config, request);
    if (refused(reply)) return 1;
    std::cout << reply.at("id").get<std::int64_t>() << "\n";
    return 0;
}

// `ewsctl silence list`: one line per silence, aligned; the reason last since it is free text.
int cmd_silence_list(const Config& config, bool all, bool as_json) {
    const auto reply = control_request(config, {{"op", "silence_list"}, {"all", all}});
    if (refused(reply)) return 1;
    const auto& silences = reply.at("silences");
    if (as_json) {
        std::cout << silences.dump(2) << "\n";
        return 0;
    }
    if (silences.empty()) {
        std::cout << (all ? "no silences\n" : "no silences in force\n");
        return 0;
    }
    std::vector<std::vector<std::string>> rows{{"ID", "SCOPE", "UNTIL", "BY", "HELD", "STATE", "REASON"}};
    for (const auto& s : silences) {
        const std::string scope = s.contains("locality") ? "locality " + s["locality"].get<std::string>()
                                                         : "region " + s.value("region", std::string());
        // expired: ended early by someone; ended: its until has passed.
        const std::string state = !s.value("expired", nlohmann::json()).is_null()
                                      ? "expired by " + s.value("expired_by", std::string())
                                  : s.value("active", false) ? "active"
                                                             : "ended";
        rows.push_back({std::to_string(s.at("id").get<std::int64_t>()), scope, s.value("until", std::string()),
                        s.value("by", std::string()), std::to_string(s.value("held", std::int64_t(0))), state,
                        s.value("reason", std::string())});
    }
    std::vector<std::size_t> width(rows.front().size(), 0);
    for (const auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        std::cout << line << "\n";
    }
    return 0;
}

int cmd_silence_expire(const Config& config, std::int64_t id, const std::string& by) {
    const auto reply = control_request(config, {{"op", "silence_expire"}, {"id", id}, {"by", by}});
    if (refused(reply)) return 1;
    std::cout << "silence " << id << " expired; the events it held are published at the next evaluation\n";
    return 0;
}

int cmd_ack(const Config& config, const std::string& alert_id, const std::string& by,
            const std::string& note) {
    nlohmann::json request = {{"op", "ack"}, {"alert_id", alert_id}, {"by", by}};
    if (!note.empty()) request["note"] = note;
    const auto reply = control_request(config, request);
    if (refused(reply)) return 1;
    std::cout << "acknowledged " << reply.value("alert_id", alert_id) << " (locality "
              << reply.value("locality", std::string()) << ") by " << by << " at "
              << reply.value("at", std::string()) << "; no reminders until it escalates\n";
    return 0;
}

// `ewsctl alerts`: every open alert with its acknowledgement, flapping and silence. Reads the
// store (safe while the daemon writes: WAL).
// What plugin_dir holds as this process loads it, then, when a daemon runs, its own view
// (which may differ: it loaded them at its start or last reload, and it quarantines).
// Returns: 1 when any plugin is refused here or is in a state other than "loaded" in the
// daemon, else 0.
int cmd_plugins(const Config& config) {
    int status = tools::list_plugins(config, std::cout);
    const pid_t pid = running_daemon(config);
    if (pid == 0) return status;
    std::cout << "\nrunning daemon" << (pid > 0 ? " (pid " + std::to_string(pid) + ")" : "");
    if (config.query_bind.empty()) {
        std::cout << ": no [query] bind in " << config.file.string() << " to ask it\n";
        return status;
    }
    nlohmann::json reply;
    try {
        reply = nlohmann::json::parse(query(query_endpoint(config), R"({"op":"status"})"));
    } catch (const std::exception& e) {
        std::cout << ": cannot ask it: " << e.what() << "\n";
        return status;
    }
    if (!reply.contains("plugins") || !reply["plugins"].is_array()) {
        std::cout << ": its status has no plugin list: " << reply.dump() << "\n";
        return status;
    }
    std::cout << " reports " << reply["plugins"].size() << " plugins:\n";
    auto text = [](const nlohmann::json& j, const char* key) {
        if (!j.contains(key)) return std::string();
        return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
    };
    for (const auto& p : reply["plugins"]) {
        const std::string state = p.contains("state") ? text(p, "state") : "unknown";
        if (state != "loaded") status = 1;
        std::string line = "  " + state;
        line.resize(std::max<std::size_t>(line.size() + 1, 14), ' ');
        for (const char* key : {"name", "version"})
            if (auto v = text(p, key); !v.empty()) line += v + " ";
        if (auto f = text(p, "file"); !f.empty()) line += " " + f;
        if (auto why = text(p, "reason"); !why.empty()) line += ": " + why;
        std::cout << line << "\n";
        // Any further fields the daemon gives (call counts, quarantine details) follow, one
        // line each, an object's members as name=value.
        for (const auto& [k, v] : p.items()) {
            if (k == "state" || k == "name" || k == "version" || k == "file" || k == "reason")
                continue;
            std::string value;
            if (v.is_object()) {
                for (const auto& [mk, mv] : v.items())
                    value += (value.empty() ? "" : ", ") + mk + "=" +
                             (mv.is_string() ? mv.get<std::string>() : mv.dump());
            } else {
                value = v.is_string() ? v.get<std::string>() : v.dump();
            }
            std::cout << "                " << k << ": " << value << "\n";
        }
    }
    return status;
}

// `ewsctl keygen NAME [--dir DIR]`: a CURVE key pair as NAME.key (0644) and NAME.key_secret
// (0600). Returns: 0, 1 when a file exists or cannot be written, 2 for a bad name.
int cmd_keygen(const std::string& name, const std::string& dir) {
    try {
        const auto certificate = curve::generate();
        const auto files = curve::write_certificate(dir, name, certificate);
        std::cout << "public:  " << files.public_file.string() << "  (give it to the other side)\n"
                  << "secret:  " << files.secret_file.string() << "  (mode 0600; keep it here)\n"
                  << "public key: " << certificate.public_key << "\n";
        return 0;
    } catch (const std::invalid_argument& e) {
        std::cerr << "ewsctl: keygen: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "ewsctl: keygen: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App cli{"ewsctl: operate ewsd (ingest, localities, evaluate, status, alerts, silences, "
                 "acknowledgements, plugins, demo data, backtests)"};
    cli.require_subcommand(1);
    std::string config_file = "/etc/ewsd/ewsd.toml";
    auto* config_option = cli.add_option("-c,--config", config_file, "configuration file (TOML)");

    std::vector<std::string> ingest_files;
    std::string ingest_format = "csv";
    auto* ingest = cli.add_subcommand(
        "ingest", "validate and store observation files (.csv or .jsonl; '-' = stdin)");
    ingest->add_option("files", ingest_files, "files")->required();
    ingest->add_option("--format", ingest_format, "format of stdin and of files named neither .csv nor .jsonl")
        ->check(CLI::IsMember({"csv", "jsonl"}));

    std::string localities_file;
    auto* localities = cli.add_subcommand("localities", "manage the locality table");
    localities->require_subcommand(1);
    auto* loc_import = localities->add_subcommand("import", "create or update localities from CSV");
    loc_import->add_option("file", localities_file, "CSV: id,name,region,population,neighbours")->required();

    std::string at;
    auto* evaluate = cli.add_subcommand("evaluate", "evaluate every locality once (no daemon running)");
    evaluate->add_option("--at", at, "evaluate as of this time (RFC 3339)");

    auto* status = cli.add_subcommand("status", "ask the running daemon for its status");
    tools::ReportCommandOptions alerts_opts;
    auto* alerts = cli.add_subcommand(
        "alerts", "list open alerts, each acknowledged or not, flapping or not, silenced or not");
    alerts->add_option("--format", alerts_opts.format, "table (default), csv or json")
        ->check(CLI::IsMember({"table", "csv", "json"}));
    alerts->add_option("--region", alerts_opts.region, "only localities in this region prefix, e.g. KE/KE-03");
    alerts->add_option("-o,--output", alerts_opts.output, "write to this file instead of standard output");

    tools::ReportCommandOptions report_opts;
    auto* report = cli.add_subcommand(
        "report", "write the prevention report of a region: one self-contained HTML page to read, "
                  "print or share");
    report->add_option("--html", report_opts.html, "file to write (replaced only when complete)")->required();
    report->add_option("--region", report_opts.region, "region prefix, e.g. KE/KE-03 (default: all regions)");
    report->add_option("--at", report_opts.at, "as of this time (RFC 3339; default: now)");
    report->add_option("--periods", report_opts.periods, "periods in the trends (default 12)")
        ->check(CLI::Range(1, 520));
    report->add_option("--step", report_opts.step_days, "days per period (default 7)")->check(CLI::Range(1, 366));
    report->add_option("--compare", report_opts.compare_days,
                       "show changes since this many days before --at (default 28)")
        ->check(CLI::Range(1, 3660));

    tools::ReportCommandOptions scores_opts;
    auto* scores = cli.add_subcommand(
        "scores", "evaluate every locality in a region now (or --at) and print its score, level and "
                  "top indicator");
    scores->add_option("--format", scores_opts.format, "table (default), csv or json")
        ->check(CLI::IsMember({"table", "csv", "json"}));
    scores->add_option("--region", scores_opts.region, "region prefix (default: all regions)");
    scores->add_option("--at", scores_opts.at, "as of this time (RFC 3339; default: now)");
    scores->add_option("-o,--output", scores_opts.output, "write to this file instead of standard output");

    auto* silence = cli.add_subcommand(
        "silence", "hold the alerts of a locality or region (stored, not published) until a time");
    silence->require_subcommand(1);
    SilenceAddOptions silence_opts;
    auto* silence_add = silence->add_subcommand("add", "add a silence; prints its id");
    auto* silence_scope = silence_add->add_option_group("scope", "what the silence covers (one of)");
    silence_scope->add_option("--locality", silence_opts.locality, "a locality id");
    silence_scope->add_option("--region", silence_opts.region, "a region prefix, e.g. KE/KE-03");
    silence_scope->require_option(1);
    silence_add->add_option("--until", silence_opts.until, "end (RFC 3339 date or UTC date-time)")->required();
    silence_add->add_option("--reason", silence_opts.reason, "why")->required();
    silence_add->add_option("--by", silence_opts.by, "who silences")->required();
    bool silence_all = false, silence_list_json = false;
    auto* silence_list = silence->add_subcommand("list", "list the silences in force");
    silence_list->add_flag("--all", silence_all, "also those expired or ended");
    silence_list->add_flag("--json", silence_list_json, "print a JSON array");
    std::int64_t silence_id = 0;
    std::string expire_by;
    auto* silence_expire = silence->add_subcommand("expire", "end a silence now");
    silence_expire->add_option("id", silence_id, "silence id (from silence list)")->required();
    silence_expire->add_option("--by", expire_by, "who ends it")->required();

    std::string ack_id, ack_by, ack_note;
    auto* ack = cli.add_subcommand("ack", "acknowledge an open alert: no reminders until it escalates");
    ack->add_option("alert_id", ack_id, "alert id (from alerts)")->required();
    ack->add_option("--by", ack_by, "who acknowledges")->required();
    ack->add_option("--note", ack_note, "what is being done");
    auto* plugins = cli.add_subcommand(
        "plugins", "list the plugins in plugin_dir with their parameters, and those refused");

    std::string backup_out;
    auto* backup = cli.add_subcommand("backup", "write a verified copy of the database (safe while ewsd runs)");
    backup->add_option("out", backup_out, "file to write; replaced only when the copy is complete")->required();
    auto* db = cli.add_subcommand("db", "inspect the database");
    db->require_subcommand(1);
    bool db_json = false;
    auto* db_stats = db->add_subcommand("stats", "size, WAL, rows per table, observation span, top kinds, last seq");
    db_stats->add_flag("--json", db_json, "print one JSON object");
    auto* db_check = db->add_subcommand("check", "full integrity_check of the database");

    tools::PluginTestOptions test;
    auto* plugin_test = cli.add_subcommand(
        "plugin-test", "run one plugin on CSV files offline and print its assessments");
    plugin_test->add_option("plugin", test.plugin, "path to a .so, or a plugin name in plugin_dir (with --config)")
        ->required();
    plugin_test->add_option("--localities", test.localities, "CSV: id,name,region,population,neighbours")
        ->required()
        ->check(CLI::ExistingFile);
    plugin_test->add_option("--data", test.data, "CSV: locality,time,kind,value,weight,source")
        ->required()
        ->check(CLI::ExistingFile);
    plugin_test->add_option("--at", test.at, "evaluate as of this time (default: the newest observation)");
    plugin_test->add_option("--param", test.params, "key=value, overriding [plugins.<name>] (repeatable)")
        ->allow_extra_args(false);
    plugin_test->add_option("--format", test.format, "table or json")
        ->check(CLI::IsMember({"table", "json"}));

    std::string keygen_name, keygen_dir = ".";
    auto* keygen = cli.add_subcommand("keygen", "write a CURVE key pair NAME.key (public) and NAME.key_secret");
    keygen->add_option("name", keygen_name, "key name: [A-Za-z0-9_.-]+, not starting with '.'")->required();
    keygen->add_option("--dir", keygen_dir, "directory (default: the current one; created 0700)");

    demo::Options gen;
    std::string gen_dir, gen_end;
    auto* gen_demo = cli.add_subcommand("gen-demo", "write a synthetic demo country and its history");
    gen_demo->add_option("dir", gen_dir, "output directory")->required();
    gen_demo->add_option("--localities", gen.localities, "number of localities")->check(CLI::Range(1, 10000000));
    gen_demo->add_option("--years", gen.years, "years of history")->check(CLI::Range(1, 50));
    gen_demo->add_option("--seed", gen.seed, "random seed");
    gen_demo->add_option("--end", gen_end, "last day of history (default: today)");
    gen_demo->add_option("--feed-weeks", gen.feed_weeks, "last weeks written as feed/ files")->check(CLI::Range(0, 520));
    gen_demo->add_option("--episode-rate", gen.episode_rate,
                         "episodes of deterioration per locality-year (default 0.04)")->check(CLI::Range(0.0, 1.0));
    gen_demo->add_option("--rising-share", gen.rising_share,
                         "share of localities deteriorating at the end (default 0.06)")->check(CLI::Range(0.0, 1.0));

    relay::Options relay_options;
    auto* relay_cmd = relay::add_subcommand(cli, relay_options);

    backtest::Options bt;
    auto* backtest_cmd = cli.add_subcommand(
        "backtest", "replay a data directory's history through the plugins, scoring and alerting "
                    "of the configuration, and measure how early and how truly they warn");
    backtest_cmd->add_option("--data", bt.data, "directory with localities.csv and observation files (*.csv, *.jsonl; subdirectories too)")
        ->required();
    backtest_cmd->add_option("--truth", bt.truth, "ground truth CSV: locality,time,outcomes")->required();
    backtest_cmd->add_option("--from", bt.from, "first evaluation (default: earliest observation + 365 days, or half the history when shorter)");
    backtest_cmd->add_option("--to", bt.to, "last evaluation (default: newest observation)");
    backtest_cmd->add_option("--step", bt.step_days, "days between evaluations, one period (default 7)")
        ->check(CLI::Range(1, 366));
    backtest_cmd->add_option("--horizon", bt.horizon,
                             "periods after an evaluation in which an outcome counts as warned of "
                             "(default 3)")
        ->check(CLI::Range(1, 520));
    backtest_cmd->add_option("--json", bt.json, "also write the figures as JSON to this file");
    backtest_cmd->add_option("--detail", bt.detail,
                             "also write every sample (locality, time, label, scores, levels) as CSV");
    backtest_cmd->add_option("--format", bt.format, "what to print: table or json")
        ->check(CLI::IsMember({"table", "json"}));

    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return cli.exit(e) == 0 ? 0 : 2;
    }
    spdlog::set_level(spdlog::level::warn);

    try {
        if (relay_cmd->parsed()) return relay::run(relay_options);
        if (keygen->parsed()) return cmd_keygen(keygen_name, keygen_dir);
        if (gen_demo->parsed()) {
            gen.dir = gen_dir;
            gen.end = std::chrono::floor<std::chrono::days>(wall_now());
            if (!gen_end.empty()) {
                auto t = parse_time(gen_end);
                if (!t) {
                    std::cerr << "ewsctl: --end '" << gen_end << "': expected a date\n";
                    return 2;
                }
                gen.end = std::chrono::floor<std::chrono::days>(*t);
            }
            if (::isatty(STDERR_FILENO))
                gen.progress = [](double f) { std::cerr << "\rgenerating " << int(f * 100) << "%" << std::flush; };
            auto s = demo::generate(gen);
            if (gen.progress) std::cerr << "\r";
            std::cout << gen_dir << ": " << s.localities << " localities (" << s.rising << " deteriorating), "
                      << s.observations << " observations, " << s.feed_files << " feed files\n";
            return 0;
        }
        Config config;
        const bool needs_config = !plugin_test->parsed() || config_option->count() > 0;
        if (needs_config) {
            try {
                config = load_config(config_file, LoadOptions{.read_key_files = false});
            } catch (const std::exception& e) {
                std::cerr << e.what() << "\n";
                return status->parsed() ? status_despite_broken_config(config_file) : 1;
            }
        }
        if (plugin_test->parsed()) {
            test.config = needs_config ? &config : nullptr;
            return tools::run_plugin_test(test, std::cout, std::cerr);
        }
        if (backtest_cmd->parsed()) {
            bt.progress = ::isatty(STDERR_FILENO) != 0;
            return backtest::run(bt, config, std::cout, std::cerr);
        }
        if (ingest->parsed()) return cmd_ingest(config, ingest_files, *parse_ingest_format(ingest_format));
        if (loc_import->parsed()) return cmd_localities_import(config, localities_file);
        if (evaluate->parsed()) return cmd_evaluate(config, at);
        if (status->parsed()) return cmd_status(config);
        if (alerts->parsed()) return tools::cmd_alerts(config, alerts_opts);
        if (report->parsed()) return tools::cmd_report(config, report_opts);
        if (scores->parsed()) return tools::cmd_scores(config, scores_opts);
        if (silence_add->parsed()) return cmd_silence_add(config, silence_opts);
        if (silence_list->parsed()) return cmd_silence_list(config, silence_all, silence_list_json);
        if (silence_expire->parsed()) return cmd_silence_expire(config, silence_id, expire_by);
        if (ack->parsed()) return cmd_ack(config, ack_id, ack_by, ack_note);
        if (plugins->parsed()) return cmd_plugins(config);
        if (backup->parsed()) return tools::cmd_backup(config, backup_out);
        if (db_stats->parsed()) return tools::cmd_db_stats(config, db_json);
        if (db_check->parsed()) return tools::cmd_db_check(config);
    } catch (const std::exception& e) {
        std::cerr << "ewsctl: " << e.what() << "\n";
        return 1;
    }
    return 2;
}
