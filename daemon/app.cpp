#include "app.hpp"

#include "control.hpp"
#include "curve.hpp"
#include "ingest_endpoint.hpp"
#include "keepalive.hpp"
#include "logging.hpp"
#include "metrics.hpp"
#include "pipeline.hpp"
#include "plugin_checks.hpp"
#include "publisher.hpp"
#include "query.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdint>
#include <array>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fstream>

#ifdef EWS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace ews {
namespace {

using Clock = std::chrono::steady_clock;

void notify(const std::string& state) {
#ifdef EWS_HAVE_SYSTEMD
    sd_notify(0, state.c_str());
#else
    (void)state;
#endif
}

// Returns: the unit's WatchdogSec= as systemd passed it (WATCHDOG_USEC), 0 without one.
std::chrono::microseconds watchdog_interval() {
    uint64_t usec = 0;
#ifdef EWS_HAVE_SYSTEMD
    if (sd_watchdog_enabled(0, &usec) <= 0) usec = 0;
#endif
    return std::chrono::microseconds(usec);
}

// While starting: a long but progressing start-up (a country's observations to load, a large
// spool file) asks systemd for more time than TimeoutStartSec= (it counts only beyond it):
// each ping allows start_extension more, and progress pings every start_ping.
constexpr std::chrono::seconds start_extension{60};
constexpr std::chrono::seconds start_ping{10};

void extend_start() {
    notify("EXTEND_TIMEOUT_USEC=" +
           std::to_string(std::chrono::microseconds(start_extension).count()));
}

// Holds an exclusive flock on STATE_DIR/ewsd.lock for the life of the process, so that
// ewsctl knows a daemon owns the store. The file holds the daemon's pid.
class StateLock {
public:
    explicit StateLock(const std::filesystem::path& state_dir) {
        path_ = state_dir / "ewsd.lock";
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        if (fd_ < 0)
            throw std::runtime_error(path_.string() + ": cannot open lock file: " + std::strerror(errno));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            char buf[32] = {};
            ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
            ::close(fd_);
            throw std::runtime_error(path_.string() + ": another ewsd (pid " +
                                     std::string(buf, n > 0 ? std::size_t(n) : 0) +
                                     ") already uses this state directory");
        }
        std::string pid = std::to_string(::getpid());
        if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0)
            spdlog::warn("{}: cannot write pid: {}", path_.string(), std::strerror(errno));
    }
    ~StateLock() {
        if (fd_ >= 0) ::close(fd_);
    }
    StateLock(const StateLock&) = delete;
    StateLock& operator=(const StateLock&) = delete;

private:
    std::filesystem::path path_;
    int fd_ = -1;
};

// Blocks SIGTERM, SIGINT and SIGHUP and delivers them through a file descriptor, so the
// event loop handles them like any other input.
class SignalFd {
public:
    SignalFd() {
        sigemptyset(&mask_);
        sigaddset(&mask_, SIGTERM);
        sigaddset(&mask_, SIGINT);
        sigaddset(&mask_, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &mask_, nullptr);
        fd_ = ::signalfd(-1, &mask_, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd_ < 0) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
    }
    ~SignalFd() {
        ::close(fd_);
        pthread_sigmask(SIG_UNBLOCK, &mask_, nullptr);
    }
    SignalFd(const SignalFd&) = delete;
    SignalFd& operator=(const SignalFd&) = delete;
    int fd() const { return fd_; }
    // Returns: the next pending signal number, or 0 when none.
    int take() {
        signalfd_siginfo info{};
        ssize_t n = ::read(fd_, &info, sizeof info);
        return n == sizeof info ? int(info.ssi_signo) : 0;
    }

private:
    sigset_t mask_{};
    int fd_ = -1;
};

void log_plugins(const Config& config, const PluginSet& set) {
    for (const auto& p : set.loaded)
        spdlog::info("plugin loaded: {} {} from {}", p.name(), p.descriptor.version, p.file.string());
    for (const auto& r : set.refused) spdlog::error("{}", refusal_text(config, r));
    for (const auto& q : set.quarantined)
        spdlog::error("plugin quarantined, not loaded: {}: {}", q.file.string(), q.reason);
    if (set.loaded.empty()) spdlog::warn("no indicator plugin loaded: no locality can be assessed");
}

// The ZAP domains of `config`: each CURVE [[publish]] endpoint's name, and "query", each with
// its authorized-keys directory.
std::map<std::string, std::filesystem::path> zap_domains(const Config& config) {
    std::map<std::string, std::filesystem::path> domains;
    for (const auto& e : config.publish)
        if (e.curve.enabled()) domains.emplace(e.name, e.curve.authorized_keys_dir);
    if (!config.query_bind.empty() && config.query_curve.enabled())
        domains.emplace(query_zap_domain, config.query_curve.authorized_keys_dir);
    return domains;
}

// The context's ZAP handler, when any endpoint has CURVE: made before any socket, since a
// CURVE server without a ZAP handler admits every key.
std::unique_ptr<curve::ZapHandler> make_zap_handler(zmq::context_t& context, const Config& config) {
    auto domains = zap_domains(config);
    if (domains.empty()) return nullptr;
    return std::make_unique<curve::ZapHandler>(context, std::move(domains));
}

// `via` says where a batch came from when it is not a spool file (e.g. " (ingest endpoint)").
void log_ingest(const IngestOutcome& out, std::string_view via = "") {
    for (const auto& e : out.errors) spdlog::warn("rejected: {}", e.format());
    if (out.duplicate)
        spdlog::info("ingest {}{}: already ingested (same content), nothing changed", out.file, via);
    else if (out.committed)
        spdlog::info("ingest {}{}: {} rows committed, {} rejected", out.file, via, out.rows.size(),
                     out.errors.size());
    else
        spdlog::error("ingest {}{}: {} rejected ({} errors), nothing committed", out.file, via,
                      via.empty() ? "file" : "batch", out.errors.size());
}

class Daemon {
public:
    Daemon(const Config& config, const RunOptions& options)
        : options_(options),
          signals_(),
          lock_((std::filesystem::create_directories(config.state_dir), config.state_dir)),
          pipeline_(config),
          spool_(config.spool_dir),
          zap_(make_zap_handler(context_, config)),
          publisher_(context_, config.publish) {
        log_plugins(pipeline_.config(), pipeline_.plugins());
        if (!options_.once) {
            try {
                checkpointer_ = std::make_unique<WalCheckpointer>(pipeline_.store().file(),
                                                                  std::chrono::seconds(1));
                pipeline_.store().set_autocheckpoint(0);
                pipeline_.store().truncate_wal_above(Store::default_wal_truncate_pages);
            } catch (const StoreError& e) {
                checkpointer_.reset();
                spdlog::warn("{}; the WAL is checkpointed on the event loop instead", e.what());
            }
        }
        for (const auto& e : config.publish) started_seq_[e.name] = pipeline_.last_seq(e.name);
        auto certificate = [](const CurveKeys& keys) {
            return keys.enabled() ? std::optional(curve::read_certificate(keys.secret_key_file)) : std::nullopt;
        };
        if (!config.query_bind.empty())
            queries_.push_back({QueryServer(context_, config.query_bind, certificate(config.query_curve)),
                                config.query_endpoint.empty() ? std::string(default_outbox)
                                                              : config.query_endpoint,
                                ""});
        for (const auto& e : config.publish)
            if (!e.query_bind.empty())
                queries_.push_back(
                    {QueryServer(context_, e.query_bind, certificate(e.curve), e.name), e.name, e.scope});
        if (!config.ingest_bind.empty())
            ingest_endpoint_.emplace(context_, config.ingest_bind, config.endpoint_policy);
        // A single pass answers no request, so only a running daemon offers the socket.
        if (!options.once) control_.emplace(context_, config.state_dir);
        if (!options.once && !config.metrics_bind.empty()) {
            metrics_.emplace(parse_listen_address(config.metrics_bind));
            spdlog::info("metrics: serving http://{}/metrics", config.metrics_bind);
        }
        spdlog::info("ewsd {} started: {} localities, {} observations, {} plugins, state {}",
                     EWS_VERSION, pipeline_.engine().locality_count(),
                     pipeline_.engine().observation_count(), pipeline_.plugins().loaded.size(),
                     config.state_dir.string());
    }

    int run() {
        ingest_spool();
        evaluate(true);
        if (options_.once) return 0;
        notify("READY=1\nSTATUS=" + status_line());
        // From now on the loop pings the watchdog between steps, and a long step (a large
        // spool file or batch, an evaluation that raises many alerts) while it makes
        // progress: one schedule, keepalive's.
        if (const auto watchdog = watchdog_interval(); watchdog.count() > 0)
            keepalive::install([] { notify("WATCHDOG=1"); }, watchdog / 2);
        else
            keepalive::uninstall();
        loop();
        notify("STOPPING=1");
        spdlog::info("ewsd stopped");
        return 0;
    }

private:
    TimePoint now() const { return options_.at ? *options_.at : wall_now(); }

    void ingest_spool() {
        for (const auto& file : spool_.pending()) {
            try {
                auto out = pipeline_.ingest(file, now());
                // Logged once the file and its rejects are in done/ or failed/, so the log
                // never names an outcome whose files are not there yet.
                spool_.finish(out);
                log_ingest(out);
                count_ingest(out);
            } catch (const std::exception& e) {
                // The database failed: the file stays in the spool and the spool is scanned
                // again in spool_retry (no new file may arrive to wake the watch).
                spdlog::error("ingest {}: {} (file kept, retried in {} s)", file.string(), e.what(),
                              spool_retry.count());
                spool_retry_at_ = Clock::now() + spool_retry;
                return;
            }
        }
        spool_retry_at_.reset();
    }

    // Answers the batches waiting at the ingest endpoint (a bounded number, so that signals and
    // queries are not starved), then evaluates the localities they changed. Each batch is
    // committed before its reply is sent.
    void ingest_pushed() {
        constexpr int max_batches_per_wake = 16;
        for (int i = 0; i < max_batches_per_wake; ++i) {
            const bool handled = ingest_endpoint_->handle(
                [this](std::string_view content, const IngestHeader& header) {
                    try {
                        auto out = pipeline_.ingest_bytes(content, header.name, header.format,
                                                          header.policy, now());
                        log_ingest(out, " (ingest endpoint)");
                        count_ingest(out);
                        return out;
                    } catch (const std::exception& e) {
                        spdlog::error("ingest {} (ingest endpoint): {}; nothing committed",
                                      header.name, e.what());
                        throw;
                    }
                });
            if (!handled) break;
        }
        evaluate_changed();
    }

    // The time of the next evaluation. On the wall clock it is strictly after the previous one:
    // the alert lifecycle skips an evaluation at or before the last (alerting.hpp, advance()
    // step 0), so a second evaluation within one second (a reload right after the timer, the
    // wall clock set back) would otherwise lose its changes.
    // An incremental evaluation within the second of the last one keeps that second: the
    // pipeline assesses the changed localities not yet evaluated at it and keeps the others
    // for the next second (Pipeline::evaluate), so new data elsewhere is not held back. A
    // full evaluation, and any evaluation while the wall clock is set back by more than a
    // second, take the next second.
    TimePoint evaluation_time(bool full) {
        TimePoint t = now();
        if (!options_.at) {
            if (last_evaluation_ && t <= *last_evaluation_) {
                const bool set_back = *last_evaluation_ - t > std::chrono::seconds(1);
                t = *last_evaluation_ + std::chrono::seconds(full || set_back ? 1 : 0);
            }
            last_evaluation_ = t;
        }
        return t;
    }

    // Whether the loop's next evaluation waits for the wall clock, so that the evaluation clock
    // (and the "at" of every event) runs at most a second ahead of it. Evaluations of changed
    // data go ahead within the second of the last evaluation (stamped with that second, see
    // evaluation_time(), so that new data is not kept waiting) and wait only while the last one
    // is already ahead (after a full evaluation, stamped a second later). The
    // timer's full evaluations wait until the wall clock has passed the last one, which brings
    // the evaluation clock back onto it. A wall clock set back by more than a second is not
    // waited for.
    bool must_wait(bool full) const {
        if (options_.at || !last_evaluation_) return false;
        const TimePoint wall = wall_now();
        if (*last_evaluation_ - wall > std::chrono::seconds(1)) return false;
        return full ? wall <= *last_evaluation_ : wall < *last_evaluation_;
    }

    // Returns: when must_wait(full) turns false.
    Clock::time_point wait_until(bool full) const {
        if (!last_evaluation_) return Clock::now();
        const TimePoint target = *last_evaluation_ + std::chrono::seconds(full ? 1 : 0);
        const auto wait = target - std::chrono::system_clock::now();
        return Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::max(wait, decltype(wait)::zero()));
    }

    // Evaluates the localities whose data changed, or marks them to be evaluated when the wall
    // clock has caught up (see must_wait(); the loop wakes for it).
    void evaluate_changed() {
        changed_waiting_ = false;
        deferred_waiting_ = false;
        if (pipeline_.engine().dirty_count() == 0) return;  // e.g. a full evaluation took them
        if (must_wait(false)) {
            changed_waiting_ = true;
            return;
        }
        evaluate(false);
        // Localities already evaluated in this second stay marked: the loop wakes for them
        // when the wall clock has passed it.
        deferred_waiting_ = !options_.at && pipeline_.engine().dirty_count() > 0;
    }

    void evaluate(bool full) {
        try {
            auto rows = pipeline_.evaluate(evaluation_time(full), full);
            for (const auto& row : rows) {
                publisher_.send(row);
                last_sent_[row.endpoint] = row.seq;
                ++published_[row.endpoint][event_of(row.payload)];
            }
            const auto& st = pipeline_.last_evaluation();
            ++(full ? evaluations_full_ : evaluations_incremental_);
            evaluation_seconds_.observe(std::chrono::duration<double>(st.duration).count());
            spdlog::log(rows.empty() && !full ? spdlog::level::debug : spdlog::level::info,
                        "evaluation ({}): {} localities in {} ms, {} events published, {} "
                        "assessments failed",
                        full ? "full" : "incremental", st.localities_assessed, st.duration.count(),
                        rows.size(), st.failed_assessments);
        } catch (const std::exception& e) {
            spdlog::error("evaluation failed, state kept as before: {}", e.what());
        }
    }

    void reload() {
        notify("RELOADING=1");
        const auto& file = pipeline_.config().file;
        try {
            Config next = load_config(file);
            auto sockets_of = [](const Config& c) {
                std::vector<std::array<std::string, 4>> out;
                for (const auto& e : c.publish) out.push_back({e.name, e.bind, e.scope, e.query_bind});
                return out;
            };
            const Config& running = pipeline_.config();
            if (sockets_of(next) != sockets_of(running) || next.query_bind != running.query_bind ||
                next.query_endpoint != running.query_endpoint || next.ingest_bind != running.ingest_bind ||
                next.metrics_bind != running.metrics_bind)
                spdlog::warn("reload: endpoint changes take effect at the next restart");
            if (next.state_dir != running.state_dir || next.spool_dir != running.spool_dir)
                spdlog::warn("reload: state_dir and spool_dir change at the next restart");
            // The new plugin set loads side by side with the running one and replaces it only
            // when no file in it newly fails to load; otherwise the running set stays. (A file
            // refused before, such as a stray non-plugin, does not block every reload.)
            PluginSet plugins = pipeline_.load_plugin_set(next);
            std::size_t newly_refused = 0;
            for (const auto& r : plugins.refused) {
                bool before = false;
                for (const auto& old : pipeline_.plugins().refused) before |= old.file == r.file;
                if (before) continue;
                ++newly_refused;
                spdlog::error("reload: {}", refusal_text(next, r));
            }
            if (newly_refused > 0)
                throw std::runtime_error(std::to_string(newly_refused) +
                                         " plugin(s) of the new set refused");
            log_plugins(next, plugins);
            const auto zap_domains_now = apply_zap_domains(next);
            spdlog::set_level(*parse_log_level(options_.log_level.value_or(next.log_level)));
            auto publish = pipeline_.config().publish;
            auto query_bind = pipeline_.config().query_bind;
            auto ingest_bind = pipeline_.config().ingest_bind;
            next.publish = publish;  // sockets stay as bound
            next.query_bind = query_bind;
            next.query_endpoint = pipeline_.config().query_endpoint;
            next.ingest_bind = ingest_bind;
            next.metrics_bind = pipeline_.config().metrics_bind;
            next.state_dir = pipeline_.config().state_dir;  // the store and its lock stay
            next.spool_dir = pipeline_.config().spool_dir;  // and so does the spool's watch
            // ...and so does CURVE, with the directories the ZAP handler now reads.
            next.query_curve = pipeline_.config().query_curve;
            for (auto& e : next.publish)
                if (e.curve.enabled()) e.curve.authorized_keys_dir = zap_domains_now.at(e.name);
            if (next.query_curve.enabled() && !next.query_bind.empty())
                next.query_curve.authorized_keys_dir = zap_domains_now.at(query_zap_domain);
            if (ingest_endpoint_) ingest_endpoint_->set_default_policy(next.endpoint_policy);
            pipeline_.reconfigure(std::move(next), std::move(plugins));
            pipeline_.reload_localities();
            spdlog::info("configuration reloaded from {}", file.string());
            last_reload_ = {wall_now(), true, {}};
            last_good_config_at_ = std::chrono::system_clock::now();
            evaluate(true);
        } catch (const std::exception& e) {
            spdlog::error("reload rejected, keeping the running configuration: {}", e.what());
            last_reload_ = {wall_now(), false, e.what()};
        }
        notify("READY=1\nSTATUS=" + status_line() +
               (last_reload_.ok ? "" : "; last reload rejected, running the previous configuration"));
    }

    // CURVE sockets stay as bound (keys and CURVE on or off change at the next restart); the
    // authorized-keys directories of the running CURVE endpoints follow the new file.
    // Returns: the domain table now in force. Throws: std::runtime_error naming a directory
    // that cannot be listed (the running table stays).
    std::map<std::string, std::filesystem::path> apply_zap_domains(const Config& next) {
        const auto running = zap_domains(pipeline_.config());
        const auto wanted = zap_domains(next);
        bool restart = running.size() != wanted.size();
        auto secret_of = [](const Config& c, const std::string& domain) {
            if (domain == query_zap_domain && !c.query_bind.empty()) return c.query_curve.secret_key_file;
            for (const auto& e : c.publish)
                if (e.name == domain) return e.curve.secret_key_file;
            return std::filesystem::path();
        };
        auto domains = running;
        for (auto& [domain, dir] : domains) {
            auto it = wanted.find(domain);
            if (it == wanted.end()) {
                restart = true;
                continue;
            }
            dir = it->second;
            restart = restart || secret_of(next, domain) != secret_of(pipeline_.config(), domain);
        }
        if (restart) spdlog::warn("reload: CURVE endpoints and server keys change at the next restart");
        if (zap_) zap_->set_domains(domains);
        return domains;
    }

    std::string status_line() const {
        auto open = pipeline_.open_alerts();
        return std::to_string(pipeline_.engine().locality_count()) + " localities, open alerts: " +
               std::to_string(open[1]) + " watch, " + std::to_string(open[2]) + " warning, " +
               std::to_string(open[3]) + " critical";
    }

    std::string status_json() {
        nlohmann::json j;
        j["schema"] = "ews.status/1";
        j["version"] = EWS_VERSION;
        j["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count();
        j["config"] = pipeline_.config().file.string();
        // An operator who sent SIGHUP sees here whether the new file was taken.
        if (last_reload_.at != TimePoint{})
            j["last_reload"] = {{"at", format_time(last_reload_.at)},
                                {"accepted", last_reload_.ok},
                                {"error", last_reload_.ok ? nlohmann::json(nullptr)
                                                          : nlohmann::json(last_reload_.error)}};
        j["localities"] = pipeline_.engine().locality_count();
        j["observations"] = pipeline_.engine().observation_count();
        auto& plugins = j["plugins"] = nlohmann::json::array();
        for (const auto& p : pipeline_.plugins().loaded) {
            nlohmann::json entry = {{"name", p.name()}, {"version", p.descriptor.version},
                                    {"file", p.file.string()}, {"state", "loaded"}};
            if (auto c = pipeline_.plugin_calls().find(p.name()); c != pipeline_.plugin_calls().end())
                entry["assessments"] = {{"calls", c->second.calls}, {"failed", c->second.errors},
                                        {"over_budget", c->second.slow}};
            plugins.push_back(std::move(entry));
        }
        for (const auto& r : pipeline_.plugins().refused)
            plugins.push_back({{"file", r.file.string()}, {"state", "refused"}, {"reason", r.reason}});
        for (const auto& q : pipeline_.plugins().quarantined)
            plugins.push_back({{"file", q.file.string()}, {"state", "quarantined"}, {"reason", q.reason}});
        const auto& ev = pipeline_.last_evaluation();
        j["last_evaluation"] = {{"at", format_time(ev.at)},
                                {"duration_ms", ev.duration.count()},
                                {"localities", ev.localities_assessed},
                                {"events", ev.events},
                                {"failed_assessments", ev.failed_assessments}};
        auto open = pipeline_.open_alerts();
        j["open_alerts"] = {{"watch", open[1]}, {"warning", open[2]}, {"critical", open[3]}};
        const auto lifecycle = pipeline_.lifecycle_counts();
        j["flapping"] = lifecycle.flapping;
        j["data_gaps"] = lifecycle.data_gaps;
        try {
            j["silences"] = pipeline_.store().silences(wall_now(), false).size();
        } catch (const std::exception& e) {
            j["silences"] = nullptr;  // the store failed: status still answers
        }
        auto& seqs = j["last_seq"] = nlohmann::json::object();
        for (const auto& ep : pipeline_.config().publish) seqs[ep.name] = pipeline_.last_seq(ep.name);
        j["subscribers"] = publisher_.subscribers();
        j["ingest"] = {{"rows", ingested_rows_}, {"rejected", rejected_rows_}};
        auto& zap = j["curve"] = nlohmann::json::object();
        if (zap_)
            for (const auto& [domain, n] : zap_->counts())
                zap[domain] = {{"admitted", n.admitted}, {"refused", n.refused}};
        return j.dump();
    }

    void count_ingest(const IngestOutcome& out) {
        ingested_rows_ += out.rows.size();
        rejected_rows_ += out.errors.size();
        ++(out.duplicate ? batches_duplicate_ : out.committed ? batches_committed_ : batches_rejected_);
    }

    // The "event" field of a payload this daemon wrote (compact JSON, the field once at the
    // top level before any nested object holds one); "unknown" when absent.
    static std::string event_of(const std::string& payload) {
        static constexpr std::string_view key = "\"event\":\"";
        const auto at = payload.find(key);
        if (at == std::string::npos) return "unknown";
        const auto start = at + key.size();
        const auto end = payload.find('"', start);
        return end == std::string::npos ? "unknown" : payload.substr(start, end - start);
    }

    MetricsSnapshot metrics_snapshot() {
        MetricsSnapshot m;
        m.ingest_rows_committed = ingested_rows_;
        m.ingest_rows_rejected = rejected_rows_;
        m.ingest_batches_committed = batches_committed_;
        m.ingest_batches_duplicate = batches_duplicate_;
        m.ingest_batches_rejected = batches_rejected_;
        m.evaluations_full = evaluations_full_;
        m.evaluations_incremental = evaluations_incremental_;
        m.evaluation_duration = evaluation_seconds_;
        const auto open = pipeline_.open_alerts();
        m.open_alerts_watch = open[1];
        m.open_alerts_warning = open[2];
        m.open_alerts_critical = open[3];
        const auto subscribers = publisher_.subscribers();
        for (const auto& ep : pipeline_.config().publish) {
            auto& e = m.publish[ep.name];
            e.last_seq_stored = pipeline_.last_seq(ep.name);
            // Before anything is sent in this process, what is stored was sent (or replayable).
            auto sent = last_sent_.find(ep.name);
            e.last_seq_sent = sent != last_sent_.end() ? sent->second : started_seq_[ep.name];
            e.outbox_rows = pipeline_.store().outbox_rows(ep.name);
            if (auto it = subscribers.find(ep.name); it != subscribers.end()) e.subscribers = it->second;
            if (auto it = published_.find(ep.name); it != published_.end()) e.events_published = it->second;
        }
        for (const auto& [name, c] : pipeline_.plugin_calls())
            m.plugins[name] = {c.calls, c.errors, c.slow};
        m.plugins_loaded = pipeline_.plugins().loaded.size();
        m.plugins_refused = pipeline_.plugins().refused.size();
        m.plugins_quarantined = pipeline_.plugins().quarantined.size();
        if (zap_)
            for (const auto& [domain, n] : zap_->counts()) m.curve[domain] = {n.admitted, n.refused};
        const auto db = pipeline_.config().state_dir / "ewsd.db";
        for (const auto& file : {db, std::filesystem::path(db.string() + "-wal")}) {
            std::error_code ec;
            const auto size = std::filesystem::file_size(file, ec);
            if (!ec) m.database_bytes += size;
        }
        m.localities = pipeline_.engine().locality_count();
        m.observations = pipeline_.engine().observation_count();
        m.started_at = started_at_;
        m.uptime = Clock::now() - started_;
        m.last_reload_successful = last_reload_.ok;
        m.last_reload_success_at = last_good_config_at_;
        return m;
    }

    // The status a scoped endpoint's query endpoint gives: nothing about the rest of the
    // country (no national counts, files or plugins), only this endpoint's numbering and the
    // alerts open in its scope as its subscribers know them.
    std::string scoped_status_json(const std::string& endpoint, const std::string& scope) {
        nlohmann::json j;
        j["schema"] = "ews.status/1";
        j["version"] = EWS_VERSION;
        j["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count();
        j["endpoint"] = endpoint;
        j["scope"] = scope;
        j["last_seq"] = {{endpoint, pipeline_.last_seq(endpoint)}};
        std::map<std::string, int> open = {{"watch", 0}, {"warning", 0}, {"critical", 0}};
        try {
            for (const auto& row : pipeline_.store().open_alert_rows(endpoint, "alert/")) {
                const auto payload = nlohmann::json::parse(row.payload, nullptr, false);
                const auto level = payload.is_object() ? payload.value("level", std::string()) : std::string();
                if (auto it = open.find(level); it != open.end()) ++it->second;
            }
            j["open_alerts"] = open;
        } catch (const std::exception&) {
            j["open_alerts"] = nullptr;  // the store failed: status still answers
        }
        return j.dump();
    }

    // Deletes what [retention] no longer keeps. The in-memory windows keep their rows until
    // the next restart; plugins look back less far than any sensible retention period.
    void apply_retention() {
        const auto& c = pipeline_.config();
        if (!c.keep_observations && !c.keep_alerts) return;
        try {
            auto r = pipeline_.store().apply_retention(wall_now(), c.keep_observations, c.keep_alerts);
            spdlog::info("retention: removed {} observations, {} ingest records, {} outbox rows",
                         r.observations, r.ingests, r.outbox);
        } catch (const StoreError& e) {
            spdlog::error("retention: {}", e.what());
        }
    }

    void heartbeat() {
        for (const auto& ep : pipeline_.config().publish)
            publisher_.heartbeat(ep.name, pipeline_.last_seq(ep.name), wall_now());
    }

    void loop() {
        const auto& cfg = [this]() -> const Config& { return pipeline_.config(); };
        auto next_eval = Clock::now() + cfg().evaluate_every;
        // Daily, first a minute after start so that start-up stays fast.
        auto next_retention = Clock::now() + std::chrono::minutes(1);
        auto next_hb = Clock::now();
        std::vector<zmq::pollitem_t> items;
        items.push_back({nullptr, signals_.fd(), ZMQ_POLLIN, 0});
        items.push_back({nullptr, spool_.watch_fd(), ZMQ_POLLIN, 0});
        constexpr std::size_t absent = SIZE_MAX;
        std::size_t ingest_item = absent, control_item = absent;
        if (control_) {
            control_item = items.size();
            items.push_back({control_->socket().handle(), 0, ZMQ_POLLIN, 0});
        }
        const std::size_t first_query_item = items.size();
        for (auto& q : queries_) items.push_back({q.server.socket().handle(), 0, ZMQ_POLLIN, 0});
        if (ingest_endpoint_) {
            ingest_item = items.size();
            items.push_back({ingest_endpoint_->socket().handle(), 0, ZMQ_POLLIN, 0});
        }
        // The metrics endpoint's connections come and go: its fds follow the fixed items and
        // are listed again before each poll.
        const std::size_t fixed_items = items.size();
        // Without inotify the spool is scanned every second instead.
        const bool polling_spool = spool_.watch_fd() < 0;
        auto next_scan = Clock::now();
        for (;;) {
            auto now_c = Clock::now();
            if (now_c >= next_hb) {
                heartbeat();
                next_hb = now_c + cfg().heartbeat;
            }
            keepalive::progress();  // WATCHDOG=1 when due (installed by run())
            if (now_c >= next_retention) {
                apply_retention();
                next_retention = now_c + std::chrono::hours(24);
            }
            if (now_c >= next_eval) {
                if (must_wait(true)) {
                    next_eval = wait_until(true);
                } else {
                    evaluate(true);
                    notify("STATUS=" + status_line());
                    next_eval = Clock::now() + cfg().evaluate_every;
                }
            }
            if (polling_spool && now_c >= next_scan) {
                ingest_spool();
                evaluate_changed();
                next_scan = now_c + std::chrono::seconds(1);
            }
            if (spool_retry_at_ && now_c >= *spool_retry_at_) {
                ingest_spool();
                evaluate_changed();
            }
            if (changed_waiting_) evaluate_changed();  // waits again until the wall clock caught up
            if (deferred_waiting_ && last_evaluation_ && wall_now() > *last_evaluation_)
                evaluate_changed();
            auto wake = std::min({next_hb, next_eval, next_retention, polling_spool ? next_scan : next_eval});
            if (changed_waiting_) wake = std::min(wake, wait_until(false));
            if (deferred_waiting_) wake = std::min(wake, wait_until(true));
            if (spool_retry_at_) wake = std::min(wake, *spool_retry_at_);
            if (auto due = keepalive::next_due()) wake = std::min(wake, *due);
            items.resize(fixed_items);
            if (metrics_) {
                if (auto deadline = metrics_->next_deadline()) wake = std::min(wake, *deadline);
                for (int fd : metrics_->fds()) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
                for (int fd : metrics_->write_fds()) items.push_back({nullptr, fd, ZMQ_POLLOUT, 0});
            }
            auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(wake - Clock::now());
            if (timeout.count() < 0) timeout = std::chrono::milliseconds(0);
            zmq::poll(items.data(), items.size(), timeout + std::chrono::milliseconds(1));

            if (items[0].revents & ZMQ_POLLIN) {
                while (int sig = signals_.take()) {
                    if (sig == SIGHUP) {
                        spdlog::info("SIGHUP: reloading configuration");
                        reload();
                    } else {
                        spdlog::info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                        return;
                    }
                }
            }
            if (items[1].revents & ZMQ_POLLIN) {
                spool_.drain_events();
                ingest_spool();
                evaluate_changed();
            }
            for (std::size_t i = 0; i < queries_.size(); ++i)
                if (items[first_query_item + i].revents & ZMQ_POLLIN)
                    queries_[i].server.handle(pipeline_.store(), queries_[i].outbox, [this, i] {
                        const auto& q = queries_[i];
                        return q.scope.empty() ? status_json() : scoped_status_json(q.outbox, q.scope);
                    });
            if (ingest_item != absent && (items[ingest_item].revents & ZMQ_POLLIN))
                ingest_pushed();
            if (metrics_) {
                for (std::size_t i = fixed_items; i < items.size(); ++i) {
                    const short ready = items[i].revents;
                    if (items[i].events == ZMQ_POLLIN && (ready & (ZMQ_POLLIN | ZMQ_POLLERR)))
                        metrics_->on_readable(items[i].fd, [this] { return metrics_snapshot(); });
                    else if (items[i].events == ZMQ_POLLOUT && (ready & (ZMQ_POLLOUT | ZMQ_POLLERR)))
                        metrics_->on_writable(items[i].fd);
                }
                metrics_->expire(Clock::now());
            }
            // Silences and acknowledgements take effect from the next evaluation on; an
            // expired silence marks what it covered dirty, so what it held goes out now.
            if (control_item != absent && (items[control_item].revents & ZMQ_POLLIN)) {
                control_->handle(pipeline_, wall_now(), [this] { return status_json(); });
                evaluate_changed();
            }
        }
    }

    RunOptions options_;
    Clock::time_point started_ = Clock::now();
    // First member: signals must be blocked before any thread (ZeroMQ's, the evaluation
    // pool's) starts, so that SIGTERM reaches the loop instead of killing a worker thread.
    SignalFd signals_;
    StateLock lock_;
    // Before the pipeline, whose construction loads every stored observation: a long
    // start-up asks for more time while it makes progress (keepalive.hpp); run() switches it
    // to the watchdog once ready.
    keepalive::Scope keepalive_{extend_start, start_ping};
    Pipeline pipeline_;
    Spool spool_;
    zmq::context_t context_;
    std::unique_ptr<curve::ZapHandler> zap_;  // before every socket; null without CURVE
    Publisher publisher_;
    // [query] (when bound) and each [[publish]] endpoint's own query endpoint, with the outbox
    // each serves.
    struct QueryEndpoint {
        QueryServer server;
        std::string outbox;
        std::string scope;  // the [[publish]] endpoint's scope; empty = everything
    };
    std::vector<QueryEndpoint> queries_;
    std::optional<IngestEndpoint> ingest_endpoint_;
    std::optional<ControlServer> control_;
    std::optional<TimePoint> last_evaluation_;  // on the wall clock only (evaluation_time())
    bool changed_waiting_ = false;              // changes wait for the wall clock (evaluate_changed())
    bool deferred_waiting_ = false;             // changes wait for the second after the last evaluation
    // Checkpoints the WAL off the event loop (a running daemon only; null when it could not
    // open its connection, and SQLite's automatic checkpoint then stays on). Declared after
    // pipeline_, so it stops before the store closes.
    std::unique_ptr<WalCheckpointer> checkpointer_;
    struct ReloadResult {
        TimePoint at{};
        bool ok = true;
        std::string error;
    } last_reload_;
    std::size_t ingested_rows_ = 0;
    std::size_t rejected_rows_ = 0;
    // Set while a spool file waits for the database to recover (ingest_spool()).
    static constexpr std::chrono::seconds spool_retry{5};
    std::optional<Clock::time_point> spool_retry_at_;
    // For the metrics endpoint (counts since start).
    std::optional<MetricsServer> metrics_;
    std::chrono::system_clock::time_point started_at_ = std::chrono::system_clock::now();
    std::chrono::system_clock::time_point last_good_config_at_ = started_at_;
    std::uint64_t batches_committed_ = 0, batches_duplicate_ = 0, batches_rejected_ = 0;
    std::uint64_t evaluations_full_ = 0, evaluations_incremental_ = 0;
    Histogram evaluation_seconds_;
    std::map<std::string, std::uint64_t> started_seq_;  // last seq per endpoint at start
    std::map<std::string, std::uint64_t> last_sent_;    // last seq handed to each PUB socket
    std::map<std::string, std::map<std::string, std::uint64_t>> published_;  // endpoint -> event -> n
};

}  // namespace

int run_daemon(const Config& config, const RunOptions& options) {
    std::unique_ptr<Daemon> daemon;
    try {
        daemon = std::make_unique<Daemon>(config, options);
    } catch (const zmq::error_t& e) {
        spdlog::critical("cannot bind a socket: {} (check [[publish]], [query] and [ingest] bind in {})",
                         e.what(), config.file.string());
        return 1;
    } catch (const std::exception& e) {
        spdlog::critical("cannot start: {}", e.what());
        return 1;
    }
    return daemon->run();
}

}  // namespace ews
