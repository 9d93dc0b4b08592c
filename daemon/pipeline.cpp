#include "pipeline.hpp"

#include "alerting.hpp"
#include "keepalive.hpp"
#include "messages.hpp"
#include "scorer.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

namespace ews {

bool in_scope(const std::string& region, const std::string& scope) {
    if (scope.empty()) return true;
    std::string s = scope;
    while (!s.empty() && s.back() == '/') s.pop_back();
    if (s.empty()) return true;
    return region == s || (region.size() > s.size() && region.starts_with(s) && region[s.size()] == '/');
}

AlertingParams alerting_params(const Config& c) {
    AlertingParams p;
    p.levels = c.levels;
    p.raise_after = c.raise_after;
    p.clear_after = c.clear_after;
    p.repeat_every = c.repeat_every;
    p.flap_window = c.flap_window;
    p.flap_high = c.flap_high;
    p.flap_low = c.flap_low;
    return p;
}

namespace {
bool about_alert(const std::string& type) {
    return type == event::raised || type == event::escalated || type == event::deescalated ||
           type == event::resolved || type == event::reminder ||
           type == event::flapping_started || type == event::flapping_stopped;
}

bool covers(const Silence& s, const Locality& locality) {
    return s.locality.empty() ? in_scope(locality.region, s.region) : s.locality == locality.id;
}

// Returns: the first silence in force at `now` (lowest id) that covers `locality`.
std::optional<ActiveSilence> covering(const std::vector<Silence>& silences, const Locality& locality,
                                      TimePoint now) {
    for (const auto& s : silences)
        if (s.active(now) && covers(s, locality)) return ActiveSilence{s.id};
    return std::nullopt;
}

// Returns: the ews.ops/1 JSON text of a plugin_quarantined event.
std::string plugin_quarantined_payload(std::uint64_t seq, const std::string& plugin,
                                       const std::filesystem::path& file,
                                       const std::string& reason, TimePoint at) {
    nlohmann::json j = {{"schema", "ews.ops/1"}, {"seq", seq},
                        {"event", "plugin_quarantined"}, {"plugin", plugin},
                        {"file", file.string()}, {"reason", reason},
                        {"at", format_time(at)}};
    return j.dump();
}

// Returns: true when `after` differs from `before` in nothing but its score and evaluation
// time. Compares in place (`before` takes the two for the compare and gets its own back),
// so that an evaluation copies each state once, not twice.
bool only_score_moved(AlertState& before, const AlertState& after) {
    const double score = before.score;
    const std::optional<TimePoint> evaluated_at = before.evaluated_at;
    before.score = after.score;
    before.evaluated_at = after.evaluated_at;
    const bool same = before == after;
    before.score = score;
    before.evaluated_at = evaluated_at;
    return same;
}

}  // namespace

std::vector<std::string> playbook(const Config& config, const AlertEvent& e, const Composite& c) {
    if (e.type == event::data_gap) return config.data_gap_actions;
    if (e.type == event::data_restored) return {};
    if (e.type == event::resolved) return config.resolved_actions;
    std::vector<std::string> out;
    if (e.level == Level::none) return out;
    if (c.dominant >= 0 && std::size_t(c.dominant) < c.contributions.size()) {
        auto per = config.indicator_actions.find(c.contributions[std::size_t(c.dominant)].indicator);
        if (per != config.indicator_actions.end()) {
            auto steps = per->second.find(e.level);
            if (steps != per->second.end()) out = steps->second;
        }
    }
    auto steps = config.actions.find(e.level);
    if (steps != config.actions.end()) out.insert(out.end(), steps->second.begin(), steps->second.end());
    return out;
}

Pipeline::Pipeline(Config config)
    : config_(std::move(config)),
      quarantine_(config_.state_dir),
      marker_(config_.state_dir) {
    std::filesystem::create_directories(config_.state_dir);
    store_ = std::make_unique<Store>(config_.state_dir / "ewsd.db");
    quarantine_crashed_plugin();
    plugins_ = load_plugin_set(config_);
    // A notice stands only while its file is still held (not replaced before this start).
    std::erase_if(notices_, [this](const QuarantineNotice& n) {
        return !quarantine_.reason_for(n.file);
    });
    engine_.set_localities(store_->localities());
    std::vector<Observation> batch;
    batch.reserve(65536);
    store_->for_each_observation([&](const Observation& o) {
        batch.push_back(o);
        if (batch.size() == batch.capacity()) {
            engine_.apply(batch);
            batch.clear();
            keepalive::progress();  // a country's observations take a minute to load
        }
    });
    engine_.apply(batch);
    engine_.mark_all_dirty();
    for (auto& s : store_->alert_states()) states_[s.locality] = s;
    // Every silence not expired by hand: one that ended at its `until` still covers an
    // evaluation `--at` an earlier time. Kept here by add_silence and expire_silence, so an
    // evaluation reads no silences from the store.
    for (auto& s : store_->silences(wall_now(), true))
        if (!s.expired) silences_.push_back(std::move(s));
    std::sort(silences_.begin(), silences_.end(),
              [](const Silence& a, const Silence& b) { return a.id < b.id; });
    for (const auto& ep : outbox_endpoints()) seqs_[ep] = store_->last_seq(ep);
}

// A marker at start means the previous process died inside the plugin it names: that
// plugin is quarantined before anything is loaded, so the restart comes up without it.
void Pipeline::quarantine_crashed_plugin() {
    auto marker = marker_.take_left_over();
    if (!marker) return;
    if (!marker->unreadable.empty()) {
        spdlog::error("{}: an earlier process died while calling a plugin, but the marker is "
                      "unreadable ({}); no plugin quarantined",
                      marker_.path().string(), marker->unreadable);
        return;
    }
    std::string reason = "crashed the daemon (marker left by pid " + std::to_string(marker->pid) +
                         " at " + format_time(marker->started) + ")";
    spdlog::error("plugin {} ({}) {}: quarantined until its file changes", marker->plugin,
                  marker->file.string(), reason);
    quarantine_.add({marker->file, marker->plugin, marker->identity, reason, wall_now()});
    notices_.push_back({marker->plugin, marker->file, std::move(reason)});
}

PluginSet Pipeline::load_plugin_set(const Config& config) {
    for (const auto& e : quarantine_.lift_changed())
        spdlog::info("quarantine lifted: {} ({}) changed since it was quarantined at {} ({})",
                     e.file.string(), e.plugin.empty() ? "unnamed" : e.plugin,
                     format_time(e.since), e.reason);
    // Loading runs plugin code too (factory, describe, configure): the crash marker names
    // each file while it loads, so a plugin that crashes there is also quarantined at the
    // next start instead of taking the daemon down at every start.
    auto set = load_plugins(config.plugin_dir, config.plugin_params,
                            [this](const std::filesystem::path& file) -> std::optional<std::string> {
                                if (auto why = quarantine_.reason_for(file)) return why;
                                LoadedPlugin loading;
                                loading.file = file;
                                loading.identity = FileIdentity::of(file).value_or(FileIdentity{});
                                loading.descriptor.name = file.stem().string();
                                try {
                                    marker_.enter(loading, wall_now());
                                } catch (const std::exception& e) {
                                    spdlog::warn("{}", e.what());
                                }
                                return std::nullopt;
                            });
    try {
        marker_.leave();
    } catch (const std::exception& e) {
        spdlog::warn("{}", e.what());
    }
    return set;
}

std::vector<std::string> Pipeline::outbox_endpoints() const {
    std::vector<std::string> out;
    for (const auto& ep : config_.publish) out.push_back(ep.name);
    if (out.empty()) out.push_back(default_outbox);
    return out;
}

void Pipeline::reconfigure(Config config, PluginSet plugins) {
    config_ = std::move(config);
    plugins_ = std::move(plugins);
    failing_streak_.clear();  // new plugin objects start with a clean record
    for (const auto& ep : outbox_endpoints())
        if (!seqs_.contains(ep)) seqs_[ep] = store_->last_seq(ep);
    engine_.mark_all_dirty();
}

void Pipeline::reload_localities() {
    engine_.set_localities(store_->localities());
}

ObservationRules Pipeline::rules(TimePoint now) const {
    ObservationRules r;
    r.known_locality = [this](std::string_view id) { return engine_.find(id).has_value(); };
    r.now = now;
    r.future_tolerance = config_.future_tolerance;
    return r;
}

IngestOutcome Pipeline::ingest(const std::filesystem::path& file, TimePoint now) {
    return applied(ingest_file(file, *store_, rules(now), config_.policy));
}

IngestOutcome Pipeline::ingest_bytes(std::string_view content, const std::string& name,
                                     IngestFormat format, RejectPolicy policy, TimePoint now) {
    return applied(ingest_content(content, name, format, *store_, rules(now), policy));
}

IngestOutcome Pipeline::applied(IngestOutcome out) {
    if (out.committed) engine_.apply(out.rows);
    return out;
}

std::uint64_t Pipeline::last_seq(const std::string& endpoint) const {
    auto it = seqs_.find(endpoint);
    return it == seqs_.end() ? 0 : it->second;
}

std::array<std::size_t, 4> Pipeline::open_alerts() const {
    std::array<std::size_t, 4> n{};
    for (const auto& [id, s] : states_) n[static_cast<std::size_t>(s.level)]++;
    n[0] = 0;
    return n;
}

Pipeline::LifecycleCounts Pipeline::lifecycle_counts() const {
    LifecycleCounts n;
    for (const auto& [id, s] : states_) {
        n.flapping += s.flapping ? 1 : 0;
        n.data_gaps += s.gaps.size();
    }
    return n;
}

std::vector<OutboxRow> Pipeline::evaluate(TimePoint now, bool full) {
    auto started = std::chrono::steady_clock::now();
    std::vector<std::string> names;
    for (const auto& p : plugins_.loaded) names.push_back(p.name());
    // The alert lifecycle takes one evaluation a second per locality (advance() skips one at
    // or before the last). An incremental evaluation within the second of the last one
    // (App::evaluation_time) assesses the changed localities not yet evaluated at `now` and
    // leaves the others marked, for the caller's next evaluation a second later.
    struct Remark {
        Engine& engine;
        std::vector<std::uint32_t> later;
        ~Remark() {
            for (std::uint32_t i : later) engine.mark_dirty(i);
        }
    } remark{engine_, {}};
    if (!full) {
        std::vector<std::uint32_t> dirty = engine_.dirty();
        engine_.clear_dirty();
        for (std::uint32_t i : dirty) {
            auto it = states_.find(engine_.locality(i).id);
            if (it != states_.end() && it->second.evaluated_at && *it->second.evaluated_at >= now)
                remark.later.push_back(i);
            else
                engine_.mark_dirty(i);
        }
    }
    // Plugins are asked for no evidence here: it is formatted again below only for the
    // localities with an event to publish or hold, a small share of those assessed.
    EvaluationOptions options = evaluation_options();
    options.evidence = false;
    auto results = engine_.evaluate(plugins_.loaded, now, !full, options);
    const auto failing = review_plugin_faults(engine_.last_call_stats());
    std::size_t failed_assessments = 0;
    for (const auto& st : engine_.last_call_stats()) failed_assessments += st.errors;

    const AlertingParams params = alerting_params(config_);
    std::vector<AlertState> changed;
    std::vector<OutboxRow> rows;
    std::vector<HeldRow> held;
    std::map<std::string, std::uint64_t> seqs = seqs_;
    std::map<std::string, AlertState> before;  // states to restore if the commit fails
    const std::vector<PublishEndpoint> endpoints =
        config_.publish.empty() ? std::vector<PublishEndpoint>{{default_outbox, "", ""}}
                                : config_.publish;
    std::size_t repeated = 0;

    std::vector<Eventful> eventful;
    // An evaluation that raises many alerts at once takes seconds after the engine's part
    // (docs/performance.md, "Many alerts at once"): its progress keeps the watchdog fed.
    std::size_t done = 0;
    for (auto& r : results) {
        if (++done % 4096 == 0) keepalive::progress();
        const Locality& loc = engine_.locality(r.locality);
        Composite composite = compose(names, std::move(r.assessments), config_.weights);
        auto [it, inserted] = states_.try_emplace(loc.id);
        if (inserted) it->second.locality = loc.id;
        AlertState& state = it->second;
        AlertState old = state;

        Reading reading;
        // No indicator with evidence: the score is unknown, not zero.
        reading.score = composite.evidence ? composite.score : std::nan("");
        reading.floor = composite.floor;
        reading.indicators.reserve(names.size());
        for (const auto& c : composite.contributions)
            reading.indicators.push_back({c.indicator, c.assessment.status, c.assessment.newest});
        auto result = advance(state, reading, now, params, covering(silences_, loc, now));
        if (!result.advanced) {
            ++repeated;
            continue;
        }
        if (!composite.evidence) composite.score = state.score;  // the last score with evidence
        // The score or the evaluation time alone changing is not worth a write.
        if (only_score_moved(old, state) && result.published.empty() && result.held.empty())
            continue;
        before.try_emplace(loc.id, std::move(old));
        changed.push_back(state);
        if (!result.published.empty() || !result.held.empty())
            eventful.push_back({r.locality, std::move(composite), std::move(result), &state});
    }
    add_evidence(eventful, now);

    for (const Eventful& x : eventful) {
        if (++done % 1024 == 0) keepalive::progress();
        const Locality& loc = engine_.locality(x.locality);
        const Composite& composite = x.composite;
        for (const auto& e : x.result.published) {
            const std::vector<std::string> actions = playbook(config_, e, composite);
            for (const auto& ep : endpoints) {
                if (!in_scope(loc.region, ep.scope)) continue;
                OutboxRow row;
                row.endpoint = ep.name;
                row.seq = ++seqs[ep.name];
                row.topic = alert_topic(loc);
                // Only rows about an alert serve the snapshot of open alerts.
                row.alert_id = about_alert(e.type) ? e.alert_id : std::string();
                row.locality = loc.id;
                row.payload = alert_payload(AlertMessage{row.seq, &e, &loc, &composite, &actions,
                                                         x.state, config_.min_cell});
                rows.push_back(std::move(row));
            }
        }
        for (const auto& e : x.result.held) {
            const std::vector<std::string> actions = playbook(config_, e, composite);
            HeldRow h;
            h.at = now;
            h.locality = loc.id;
            h.alert_id = e.alert_id;
            h.event = e.type;
            h.reason = e.held;
            h.silence_id = e.silence_id;
            h.payload = alert_payload(
                AlertMessage{0, &e, &loc, &composite, &actions, x.state, config_.min_cell});
            held.push_back(std::move(h));
        }
    }
    if (repeated > 0)
        spdlog::info("evaluation at {}: {} localities were already evaluated at or after that "
                     "time; their state is unchanged",
                     format_time(now), repeated);

    // Operational events concern no locality: every endpoint gets them, whatever its scope.
    std::vector<QuarantineNotice> notices = notices_;
    for (const auto& f : failing) {
        const LoadedPlugin& p = plugins_.loaded[f.index];
        notices.push_back({p.name(), p.file, f.reason});
    }
    for (const auto& n : notices) {
        for (const auto& ep : outbox_endpoints()) {
            OutboxRow row;
            row.endpoint = ep;
            row.seq = ++seqs[ep];
            row.topic = plugin_ops_topic;
            row.payload = plugin_quarantined_payload(row.seq, n.plugin, n.file, n.reason, now);
            rows.push_back(std::move(row));
        }
    }

    try {
        if (!changed.empty() || !rows.empty() || !held.empty())
            store_->commit_evaluation(changed, rows, held);
    } catch (...) {
        // The failing plugins' streaks stay reached, so the next evaluation quarantines them.
        for (auto& [id, s] : before) states_[id] = s;
        engine_.mark_all_dirty();
        throw;
    }
    seqs_ = std::move(seqs);
    notices_.clear();
    quarantine_failing(failing);
    last_eval_.at = now;
    last_eval_.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    last_eval_.localities_assessed = results.size();
    last_eval_.events = rows.size();
    last_eval_.full = full;
    last_eval_.failed_assessments = failed_assessments;
    return rows;
}

void Pipeline::add_evidence(std::vector<Eventful>& eventful, TimePoint now) {
    if (eventful.empty() || plugins_.loaded.empty()) return;
    std::vector<std::uint32_t> localities;  // ascending, as the results were
    localities.reserve(eventful.size());
    for (const auto& x : eventful) localities.push_back(static_cast<std::uint32_t>(x.locality));
    auto explained = engine_.assess(plugins_.loaded, now, localities, evaluation_options());
    for (std::size_t k = 0; k < eventful.size(); ++k) {
        Eventful& x = eventful[k];
        for (std::size_t i : ews::add_evidence(x.composite, std::move(explained[k].assessments)))
            spdlog::warn("plugin {} assessed locality {} differently when asked for its evidence "
                         "(a plugin must return the same score, confidence, status, newest and "
                         "floor either way); the event carries the first assessment",
                         plugins_.loaded[i].name(), engine_.locality(x.locality).id);
    }
}

EvaluationOptions Pipeline::evaluation_options() {
    EvaluationOptions o;
    o.budget = config_.plugin_budget;
    // The marker must never name a plugin other than the one running: when it cannot be
    // written, any older one is removed and the evaluation goes on without crash detection.
    o.before_plugin = [this](const LoadedPlugin& plugin) {
        try {
            marker_.enter(plugin, wall_now());
            marker_failed_ = false;
        } catch (const std::exception& e) {
            if (!marker_failed_)
                spdlog::error("{}; a plugin that crashes the daemon now goes unidentified",
                              e.what());
            marker_failed_ = true;
            try {
                marker_.leave();
            } catch (const std::exception&) {
            }
        }
    };
    o.after_plugins = [this] {
        try {
            marker_.leave();
        } catch (const std::exception& e) {
            // Left in place it would blame an innocent plugin at the next start.
            spdlog::error("{}", e.what());
        }
    };
    return o;
}

std::vector<Pipeline::Failing> Pipeline::review_plugin_faults(
    const std::vector<PluginCallStats>& stats) {
    std::vector<Failing> failing;
    for (std::size_t i = 0; i < stats.size() && i < plugins_.loaded.size(); ++i) {
        const PluginCallStats& s = stats[i];
        const std::string& name = plugins_.loaded[i].name();
        PluginCallTotals& total = calls_[name];
        total.calls += s.calls;
        total.errors += s.errors;
        total.slow += s.slow;
        if (s.calls == 0) continue;  // not called: no evidence either way
        if (s.errors > 0) {
            for (const auto& [locality, why] : s.first_failures)
                spdlog::warn("plugin {} failed on locality {}: {}", name,
                             engine_.locality(locality).id, why);
            spdlog::warn("plugin {}: {} of {} assessments failed in this evaluation ({} over the "
                         "time budget of {} ms){}",
                         name, s.errors, s.calls, s.slow, config_.plugin_budget.count(),
                         s.errors > s.first_failures.size()
                             ? "; the first " + std::to_string(s.first_failures.size()) +
                                   " are logged"
                             : "");
        }
        // Failing: more than half of its calls failed.
        int& streak = failing_streak_[name];
        streak = s.errors * 2 > s.calls ? streak + 1 : 0;
        if (streak < config_.quarantine_after) continue;
        std::string reason = "failed " + std::to_string(streak) + " evaluations in a row (last: " +
                             std::to_string(s.errors) + " of " + std::to_string(s.calls) +
                             " assessments failed";
        if (!s.first_failures.empty()) reason += ", first: " + s.first_failures.front().second;
        reason += ")";
        failing.push_back({i, std::move(reason)});
    }
    return failing;
}

void Pipeline::quarantine_failing(const std::vector<Failing>& failing) {
    // Highest index first, so the indices of the others stay valid while erasing.
    for (auto f = failing.rbegin(); f != failing.rend(); ++f) {
        const LoadedPlugin& p = plugins_.loaded[f->index];
        spdlog::error("plugin {} ({}) quarantined until its file changes: {}", p.name(),
                      p.file.string(), f->reason);
        quarantine_.add({p.file, p.name(), p.identity, f->reason, wall_now()});
        plugins_.quarantined.push_back({p.file, f->reason});
        failing_streak_.erase(p.name());
        plugins_.loaded.erase(plugins_.loaded.begin() + static_cast<std::ptrdiff_t>(f->index));
    }
}

bool valid_region(std::string_view region) {
    if (region.size() > 1 && region.back() == '/') region.remove_suffix(1);
    if (region.empty() || region.size() > 512) return false;
    bool segment_empty = true;
    for (char c : region) {
        if (c == '/') {
            if (segment_empty) return false;
            segment_empty = true;
        } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') {
            segment_empty = false;
        } else {
            return false;
        }
    }
    return !segment_empty;
}

void validate_silence(const Silence& silence, TimePoint now,
                      const std::function<bool(std::string_view)>& known_locality) {
    constexpr std::size_t max_text = 1000;
    if (silence.locality.empty() == silence.region.empty())
        throw std::invalid_argument("locality, region: give exactly one of them");
    if (!silence.locality.empty() && !known_locality(silence.locality))
        throw std::invalid_argument("locality: unknown locality '" + silence.locality + "'");
    if (!silence.region.empty() && !valid_region(silence.region))
        throw std::invalid_argument("region: not a region path (codes of [A-Za-z0-9_.-] "
                                    "separated by single '/', e.g. KE/KE-03): '" +
                                    silence.region + "'");
    if (silence.until <= now)
        throw std::invalid_argument("until: " + format_time(silence.until) +
                                    " is not after the current time " + format_time(now));
    if (silence.reason.empty() || silence.reason.size() > max_text)
        throw std::invalid_argument("reason: give a reason of 1.." + std::to_string(max_text) +
                                    " characters");
    if (silence.by.empty() || silence.by.size() > 200)
        throw std::invalid_argument("by: give who sets the silence (1..200 characters)");
}

void validate_acknowledgement(const std::string& by, const std::string& note) {
    if (by.empty() || by.size() > 200)
        throw std::invalid_argument("by: give who acknowledges (1..200 characters)");
    if (note.size() > 2000) throw std::invalid_argument("note: at most 2000 characters");
}

std::int64_t Pipeline::add_silence(Silence silence, TimePoint now) {
    validate_silence(silence, now, [this](std::string_view id) { return engine_.find(id).has_value(); });
    silence.created = now;
    silence.expired.reset();
    silence.expired_by.clear();
    const std::int64_t id = store_->add_silence(silence);
    silence.id = id;
    silences_.push_back(silence);  // ids grow, so silences_ stays ordered by id
    // Who and why are in the audit table, not in the log: the log names no person and
    // carries no free text.
    spdlog::info("silence {} added: {} until {}", id,
                 silence.locality.empty() ? "region " + silence.region : "locality " + silence.locality,
                 format_time(silence.until));
    return id;
}

bool Pipeline::expire_silence(std::int64_t id, const std::string& by, TimePoint at) {
    if (by.empty()) throw std::invalid_argument("by: give who expires the silence");
    if (!store_->expire_silence(id, by, at)) return false;
    spdlog::info("silence {} expired", id);
    auto ending = std::find_if(silences_.begin(), silences_.end(),
                               [id](const Silence& s) { return s.id == id; });
    if (ending == silences_.end()) return true;  // added by another process: not held here
    // What it held is published at the next evaluation of each locality it covered: make
    // that the incremental one that follows, not the next scheduled full evaluation.
    for (std::size_t i = 0; i < engine_.locality_count(); ++i)
        if (covers(*ending, engine_.locality(i))) engine_.mark_dirty(i);
    silences_.erase(ending);
    return true;
}

Acknowledgement Pipeline::acknowledge(const std::string& alert_id, const std::string& by,
                                      const std::string& note, TimePoint at) {
    validate_acknowledgement(by, note);
    for (auto& [locality, state] : states_) {
        if (alert_id.empty() || (state.alert_id != alert_id && state.notified_id != alert_id))
            continue;
        AlertState updated = state;
        if (!ews::acknowledge(updated, alert_id, by, at)) break;
        Acknowledgement ack{alert_id, locality, by, note, at};
        store_->commit_acknowledgement(updated, ack);
        state = std::move(updated);
        spdlog::info("alert {} acknowledged", alert_id);
        return ack;
    }
    throw std::invalid_argument("alert_id: no open alert '" + alert_id + "'");
}

}  // namespace ews
