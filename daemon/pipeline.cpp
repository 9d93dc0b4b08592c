#include "pipeline.hpp"

#include "alerting.hpp"
#include "messages.hpp"
#include "scorer.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace ews {

bool in_scope(const std::string& region, const std::string& scope) {
    if (scope.empty()) return true;
    std::string s = scope;
    while (!s.empty() && s.back() == '/') s.pop_back();
    if (s.empty()) return true;
    return region == s || (region.size() > s.size() && region.starts_with(s) && region[s.size()] == '/');
}

namespace {
AlertingParams alerting_params(const Config& c) {
    return AlertingParams{c.levels, c.raise_after, c.clear_after};
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
}  // namespace

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
        }
    });
    engine_.apply(batch);
    engine_.mark_all_dirty();
    for (auto& s : store_->alert_states()) states_[s.locality] = s;
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

std::vector<OutboxRow> Pipeline::evaluate(TimePoint now, bool full) {
    auto started = std::chrono::steady_clock::now();
    std::vector<std::string> names;
    for (const auto& p : plugins_.loaded) names.push_back(p.name());
    auto results = engine_.evaluate(plugins_.loaded, now, !full, evaluation_options());
    const auto failing = review_plugin_faults(engine_.last_call_stats());

    const AlertingParams params = alerting_params(config_);
    std::vector<AlertState> changed;
    std::vector<OutboxRow> rows;
    std::map<std::string, std::uint64_t> seqs = seqs_;
    std::map<std::string, AlertState> before;  // states to restore if the commit fails
    static const std::vector<std::string> no_actions;

    for (const auto& r : results) {
        const Locality& loc = engine_.locality(r.locality);
        Composite composite = compose(names, r.assessments, config_.weights);
        auto [it, inserted] = states_.try_emplace(loc.id);
        if (inserted) it->second.locality = loc.id;
        AlertState& state = it->second;
        const AlertState old = state;
        // Data that has stopped (stale) or a failing plugin must not let an alert fall: only
        // fresh data may lower a level. (no_data, an indicator with nothing in its look-back
        // at all, does not hold it: a locality never covered by a source could never clear.)
        const bool may_lower = std::none_of(
            r.assessments.begin(), r.assessments.end(), [](const sdk::Assessment& a) {
                return a.status == sdk::Status::stale || a.status == sdk::Status::error;
            });
        auto event = step(state, composite.score, composite.floor, now, params, may_lower);
        // The score alone changing is not worth a write; level and pending counters are.
        AlertState unchanged = old;
        unchanged.score = state.score;
        if (state == unchanged) continue;
        before.try_emplace(loc.id, old);
        changed.push_back(state);
        if (!event) continue;
        auto acts = config_.actions.find(event->level);
        const auto& actions = acts == config_.actions.end() ? no_actions : acts->second;
        for (const auto& ep : config_.publish.empty()
                                  ? std::vector<PublishEndpoint>{{default_outbox, "", ""}}
                                  : config_.publish) {
            if (!in_scope(loc.region, ep.scope)) continue;
            OutboxRow row;
            row.endpoint = ep.name;
            row.seq = ++seqs[ep.name];
            row.topic = alert_topic(loc);
            row.alert_id = event->alert_id;
            row.locality = loc.id;
            row.payload = alert_payload(AlertMessage{row.seq, &*event, &loc, &composite, &actions,
                                                     config_.min_cell});
            rows.push_back(std::move(row));
        }
    }

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
        if (!changed.empty() || !rows.empty()) store_->commit_evaluation(changed, rows);
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
    last_eval_.failed_assessments = 0;
    for (const auto& st : engine_.last_call_stats()) last_eval_.failed_assessments += st.errors;
    return rows;
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

}  // namespace ews
