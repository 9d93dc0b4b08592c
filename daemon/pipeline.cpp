#include "pipeline.hpp"

#include "alerting.hpp"
#include "messages.hpp"
#include "scorer.hpp"

#include <spdlog/spdlog.h>

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
}  // namespace

Pipeline::Pipeline(Config config) : config_(std::move(config)) {
    std::filesystem::create_directories(config_.state_dir);
    store_ = std::make_unique<Store>(config_.state_dir / "ewsd.db");
    plugins_ = load_plugins(config_.plugin_dir, config_.plugin_params);
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

std::vector<std::string> Pipeline::outbox_endpoints() const {
    std::vector<std::string> out;
    for (const auto& ep : config_.publish) out.push_back(ep.name);
    if (out.empty()) out.push_back(default_outbox);
    return out;
}

void Pipeline::reconfigure(Config config, PluginSet plugins) {
    config_ = std::move(config);
    plugins_ = std::move(plugins);
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
    IngestOutcome out = ingest_file(file, *store_, rules(now), config_.policy);
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
    auto results = engine_.evaluate(plugins_.loaded, now, !full);

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
        auto event = step(state, composite.score, composite.floor, now, params);
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

    try {
        if (!changed.empty() || !rows.empty()) store_->commit_evaluation(changed, rows);
    } catch (...) {
        for (auto& [id, s] : before) states_[id] = s;
        engine_.mark_all_dirty();
        throw;
    }
    seqs_ = std::move(seqs);
    last_eval_.at = now;
    last_eval_.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    last_eval_.localities_assessed = results.size();
    last_eval_.events = rows.size();
    last_eval_.full = full;
    return rows;
}

}  // namespace ews
