// ews-sub: a subscriber of ewsd's alert protocol v1 (docs/protocol.md).
//
// Built from the protocol document, ZeroMQ and JSON; of the daemon's code it uses only the
// CURVE key files' reader (daemon/curve.hpp). It subscribes to one region's alerts, the
// operational events and the heartbeats, prints each event once, in seq order, and settles
// every seq gap with a replay from the query endpoint. With --state it keeps its place across
// its own restarts; it reconnects across the daemon's.
//
// Exit status: 0 when --count is reached, --timeout passes, or SIGINT/SIGTERM arrives;
// 1 for a connection or protocol error that persists; 2 for a usage error; 3 when the
// --state file cannot be read or written.

#include "subscriber.hpp"

#include <CLI/CLI.hpp>

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

namespace {

using namespace ews::sub;

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;
constexpr int exit_state = 3;

const char* const exit_status_text =
    "Exit status:\n"
    "  0  --count alerts printed, --timeout passed, or SIGINT/SIGTERM\n"
    "  1  a connection or protocol error that persists: the query endpoint unreachable for\n"
    "     --give-up seconds while a gap needs settling, a handshake failing as long, a key\n"
    "     refused, a malformed message, or seqs lost (pruned before they could be replayed)\n"
    "  2  usage error (including a key file that cannot be read)\n"
    "  3  the --state file cannot be read or written\n";

// Returns: `region` as a topic suffix: without a leading "alert/", with a trailing "/" unless
// empty, so that "KE/KE-03" never also matches "KE/KE-030".
std::string normalise_region(std::string region) {
    if (region.rfind("alert/", 0) == 0) region.erase(0, 6);
    while (!region.empty() && region.front() == '/') region.erase(0, 1);
    if (!region.empty() && region.back() != '/') region += '/';
    return region;
}

bool is_z85_key(const std::string& s) {
    static const std::string alphabet =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    return s.size() == ews::curve::z85_key_length && s.find_first_not_of(alphabet) == std::string::npos;
}

// Returns: the CURVE credentials of --server-key and --key-file.
// Throws: std::runtime_error saying which file or value is wrong.
CurveClient load_curve(const std::string& server_key, const std::string& key_file) {
    CurveClient curve;
    std::error_code ec;
    if (std::filesystem::exists(server_key, ec)) {
        curve.server_public_key = ews::curve::read_certificate(server_key).public_key;
    } else if (is_z85_key(server_key)) {
        curve.server_public_key = server_key;
    } else {
        throw std::runtime_error("--server-key: \"" + printable(server_key) +
                                 "\" is neither a certificate file nor a 40-character Z85 public key");
    }
    curve.client = ews::curve::read_certificate(key_file);
    if (!curve.client.secret_key)
        throw std::runtime_error("--key-file: " + key_file +
                                 " holds no secret-key: give this subscriber's NAME.key_secret file");
    return curve;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    std::string region;
    std::string min_level = "none";
    std::string events;
    std::string format = "pretty";
    std::string state_path;
    std::string server_key;
    std::string key_file;

    CLI::App app{"ews-sub: print ewsd alerts for one region, each once and in seq order, replaying any gap"};
    app.footer(exit_status_text);
    app.add_option("--endpoint", options.endpoint, "alert PUB endpoint")->capture_default_str();
    auto* query = app.add_option("--query", options.query,
                                 "query endpoint (REP) for replays and snapshots, e.g. tcp://127.0.0.1:7602");
    app.add_option("--region", region, "region prefix, e.g. KE/KE-03 (default: all)");
    app.add_option("--min-level", min_level,
                   "lowest level shown (resolved and deescalated alerts show when they were at it)")
        ->check(CLI::IsMember({"none", "watch", "warning", "critical"}))
        ->capture_default_str();
    std::string valid_events;
    for (const char* name : alert_event_names) valid_events += (valid_events.empty() ? "" : ",") + std::string(name);
    app.add_option("--events", events, "alert events shown, comma-separated, of: " + valid_events + " (default: all)")
        ->check(CLI::Validator(
            [](std::string& s) {
                try {
                    parse_event_list(s);
                    return std::string();
                } catch (const std::invalid_argument& e) {
                    return std::string(e.what());
                }
            },
            "LIST"));
    app.add_option("--format", format,
                   "pretty (for people), json (one payload per line) or csv (a header, then seq,at,event,level,"
                   "previous_level,locality,name,region,score,confidence,alert_id)")
        ->check(CLI::IsMember({"pretty", "json", "csv"}))
        ->capture_default_str();
    auto* replay = app.add_option("--replay-from", options.replay_from,
                                  "print the events after seq N first, then live ones (0: all the daemon keeps)")
                       ->needs(query);
    app.add_flag("--snapshot", options.snapshot, "print the open alerts first, then live events")
        ->needs(query)
        ->excludes(replay);
    app.add_option("--state", state_path,
                   "keep the last seq handled in FILE; when FILE exists, start after its seq (before "
                   "--replay-from or --snapshot, which then only apply to a first start)")
        ->needs(query);
    const CLI::Validator at_least_one(
        [](std::string& s) {
            const bool ok = !s.empty() && s.find_first_not_of("0123456789") == std::string::npos &&
                            s.find_first_not_of('0') != std::string::npos;
            return ok ? std::string() : "expected a whole number of at least 1, got " + s;
        },
        "N>=1");
    const CLI::Validator positive_seconds(
        [](std::string& s) {
            char* end = nullptr;
            const double v = std::strtod(s.c_str(), &end);
            const bool ok = end != s.c_str() && *end == '\0' && std::isfinite(v) && v > 0;
            return ok ? std::string() : "expected a number of seconds above 0, got " + s;
        },
        "SECONDS>0");
    app.add_option("--count", options.count, "exit after N alerts are printed (operational events not counted)")
        ->check(at_least_one);
    app.add_option("--timeout", options.timeout_s, "exit after SECONDS")->check(positive_seconds);
    app.add_option("--give-up", options.give_up_s,
                   "exit 1 when a gap cannot be settled (query endpoint silent) or a handshake keeps failing "
                   "for SECONDS")
        ->check(positive_seconds)
        ->capture_default_str();
    auto* server_key_opt = app.add_option("--server-key", server_key,
                                          "the endpoints' CURVE public key: a NAME.key certificate file or its "
                                          "40-character Z85 text");
    auto* key_file_opt = app.add_option("--key-file", key_file,
                                        "this subscriber's CURVE secret certificate (NAME.key_secret)");
    server_key_opt->needs(key_file_opt);
    key_file_opt->needs(server_key_opt);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : exit_usage;
    }

    options.filter.topic_prefix = "alert/" + normalise_region(region);
    options.filter.min_rank = level_rank(Json(min_level));
    if (!events.empty()) options.filter.events = parse_event_list(events);
    options.format = format == "json" ? Format::json : format == "csv" ? Format::csv : Format::pretty;
    if (!server_key.empty()) {
        try {
            options.curve = load_curve(server_key, key_file);
        } catch (const std::exception& e) {
            std::cerr << "ews-sub: " << e.what() << std::endl;
            return exit_usage;
        }
    }

    std::optional<StateFile> state;
    std::optional<SavedState> saved;
    if (!state_path.empty()) {
        try {
            state.emplace(state_path, options.endpoint);
            saved = state->load();
            if (!saved) state->probe();
        } catch (const StateError& e) {
            std::cerr << "ews-sub: " << e.what() << std::endl;
            return exit_state;
        }
    }

    // Signals become readable on a descriptor that the poll loop watches. Blocked before the
    // ZeroMQ context starts its threads, so that they inherit the mask. An ignored signal is
    // discarded before signalfd can see it (a shell starts background jobs with SIGINT
    // ignored), so both are set to their default action first.
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
        std::perror("ews-sub: sigprocmask");
        return exit_failure;
    }
    const int signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd < 0) {
        std::perror("ews-sub: signalfd");
        return exit_failure;
    }

    int status = 0;
    try {
        Subscriber subscriber(options, state ? &*state : nullptr, saved, signal_fd);
        subscriber.run();
    } catch (const StateError& e) {
        std::cerr << "ews-sub: " << e.what() << std::endl;
        status = exit_state;
    } catch (const Failure& e) {
        std::cerr << "ews-sub: " << e.what() << std::endl;
        status = exit_failure;
    } catch (const zmq::error_t& e) {
        std::cerr << "ews-sub: " << options.endpoint << (options.query.empty() ? "" : ", " + options.query) << ": "
                  << e.what() << std::endl;
        status = exit_failure;
    }
    close(signal_fd);
    return status;
}
