#include "alerting.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string_view>

// Counting rule: an evaluation counts towards a move when its target level equals the
// pending one; a different target restarts the count at 1, the current level resets it to 0.
// A floor counts like any other target: with raise_after = 2 a sentinel floor raises after
// two evaluations, so one stray report cannot raise an alert on its own.
//
// A non-finite score is no evidence either way (missing data is not safety): the target is
// then the current level, held at least at the floor, and state.score keeps its last value.

namespace ews {

namespace {

constexpr Level levels_up[] = {Level::watch, Level::warning, Level::critical};

const LevelThresholds& thresholds(const AlertingParams& params, Level level) {
    return params.levels[static_cast<std::size_t>(level) - 1];
}

}  // namespace

Level target_level(double score, Level current, Level floor, const AlertingParams& params) {
    if (!std::isfinite(score)) return std::max(current, floor);
    Level up = Level::none;
    for (Level l : levels_up)
        if (score >= thresholds(params, l).raise) up = l;
    if (up > current) return std::max(up, floor);
    Level stay = Level::none;
    for (Level l : levels_up)
        if (l <= current && score >= thresholds(params, l).clear) stay = l;
    return std::max(stay, floor);
}

std::optional<AlertEvent> step(AlertState& state, double score, Level floor, TimePoint now,
                               const AlertingParams& params, bool may_lower) {
    Level target = target_level(score, state.level, floor, params);
    // Missing data is not safety: with an indicator stale or failing, the score may raise an
    // alert but never lower or resolve one.
    if (!may_lower && target < state.level) target = state.level;
    if (std::isfinite(score)) state.score = score;
    if (target == state.level) {
        state.pending = state.level;
        state.pending_count = 0;
        return std::nullopt;
    }
    if (target == state.pending) {
        ++state.pending_count;
    } else {
        state.pending = target;
        state.pending_count = 1;
    }
    const int needed = target > state.level ? params.raise_after : params.clear_after;
    if (state.pending_count < needed) return std::nullopt;

    AlertEvent event;
    event.previous = state.level;
    event.level = target;
    event.at = now;
    if (state.level == Level::none) {
        event.type = "raised";
        state.alert_id = make_alert_id(state.locality, now);
        state.opened_at = now;
    } else if (target == Level::none) {
        event.type = "resolved";
    } else if (target > state.level) {
        event.type = "escalated";
    } else {
        event.type = "deescalated";
    }
    event.alert_id = state.alert_id;
    event.opened_at = state.opened_at.value_or(now);

    state.level = target;
    state.changed_at = now;
    state.pending = target;
    state.pending_count = 0;
    if (target == Level::none) {
        state.alert_id.clear();
        state.opened_at.reset();
    }
    return event;
}

namespace {

std::string compact_stamp(TimePoint t) {
    std::string stamp = format_time(t);  // 2026-11-28T00:00:00Z
    std::erase_if(stamp, [](char c) { return c == '-' || c == ':'; });
    return stamp;
}

// FNV-1a over the bytes given: stable across runs and builds, so a fingerprint stored before
// a restart still compares equal after it.
struct Fnv {
    std::uint64_t h = 1469598103934665603ull;
    void bytes(const void* p, std::size_t n) {
        auto* c = static_cast<const unsigned char*>(p);
        for (std::size_t i = 0; i < n; ++i) {
            h ^= c[i];
            h *= 1099511628211ull;
        }
    }
    void text(std::string_view s) {
        bytes(s.data(), s.size());
        bytes("\0", 1);
    }
    void number(std::int64_t v) { bytes(&v, sizeof v); }
};

// The inputs of a reading that decide whether it is new: each indicator's status and the time
// of its newest data, in indicator order.
std::uint64_t fingerprint(const Reading& reading) {
    std::vector<const IndicatorReading*> sorted;
    for (const auto& i : reading.indicators) sorted.push_back(&i);
    std::sort(sorted.begin(), sorted.end(),
              [](auto* a, auto* b) { return a->indicator < b->indicator; });
    Fnv f;
    for (const auto* i : sorted) {
        f.text(i->indicator);
        f.number(static_cast<std::int64_t>(i->status));
        f.number(i->newest ? i->newest->time_since_epoch().count() : INT64_MIN);
    }
    return f.h;
}

std::uint32_t window_mask(int transitions) {
    return transitions >= 32 ? 0xffffffffu : ((1u << transitions) - 1u);
}

int clamp_window(int window) { return std::clamp(window, 3, 32); }

void add_covered(AlertState& state, const std::string& indicator) {
    auto it = std::lower_bound(state.covered.begin(), state.covered.end(), indicator);
    if (it == state.covered.end() || *it != indicator) state.covered.insert(it, indicator);
}

bool is_covered(const AlertState& state, const std::string& indicator) {
    return std::binary_search(state.covered.begin(), state.covered.end(), indicator);
}

auto find_gap(std::vector<DataGap>& gaps, const std::string& indicator) {
    return std::find_if(gaps.begin(), gaps.end(),
                        [&](const DataGap& g) { return g.indicator == indicator; });
}

bool same_gap(const DataGap& a, const DataGap& b) {
    return a.indicator == b.indicator && a.since == b.since;
}

// Step 1 of advance(): coverage and open gaps from this evaluation's statuses.
void update_gaps(AlertState& state, const Reading& reading, TimePoint now) {
    for (const auto& ind : reading.indicators) {
        const bool ok = ind.status == sdk::Status::ok;
        const bool stale = ind.status == sdk::Status::stale;
        const bool missing = ind.status == sdk::Status::no_data;
        if (ok || stale) add_covered(state, ind.indicator);
        auto gap = find_gap(state.gaps, ind.indicator);
        if (ok) {
            if (gap != state.gaps.end()) state.gaps.erase(gap);
        } else if (stale || (missing && is_covered(state, ind.indicator))) {
            if (gap == state.gaps.end()) {
                state.gaps.push_back({ind.indicator, now, ind.status, ind.newest});
            } else {
                gap->status = ind.status;
                gap->newest = ind.newest;
            }
        }
    }
    std::sort(state.gaps.begin(), state.gaps.end(),
              [](const DataGap& a, const DataGap& b) { return a.indicator < b.indicator; });
}

std::optional<TimePoint> newest_of(const Reading& reading, const std::string& indicator) {
    for (const auto& i : reading.indicators)
        if (i.indicator == indicator) return i.newest;
    return std::nullopt;
}

// A data event about `gap`, told at the notified level (a gap changes no level).
AlertEvent gap_event(const AlertState& state, const char* type, DataGap gap, TimePoint now) {
    AlertEvent e;
    e.type = type;
    e.alert_id = gap_id(state.locality, gap);
    e.level = e.previous = state.notified_level;
    e.at = now;
    e.opened_at = gap.since;  // the gap is what opened: its id and start go together
    e.gap = std::move(gap);
    return e;
}

// The gap events between `before` and `after`: data_gap for each gap in `after` only,
// data_restored for each in `before` only (its status ok, its newest the current one).
void gap_changes(const AlertState& state, const std::vector<DataGap>& before,
                 const std::vector<DataGap>& after, const Reading& reading, TimePoint now,
                 std::vector<AlertEvent>& out) {
    for (const auto& b : before) {
        if (std::any_of(after.begin(), after.end(), [&](const DataGap& a) { return same_gap(a, b); }))
            continue;
        DataGap restored = b;
        restored.status = sdk::Status::ok;
        restored.newest = newest_of(reading, b.indicator);
        out.push_back(gap_event(state, event::data_restored, std::move(restored), now));
    }
    for (const auto& a : after)
        if (std::none_of(before.begin(), before.end(), [&](const DataGap& b) { return same_gap(a, b); }))
            out.push_back(gap_event(state, event::data_gap, a, now));
}

AlertEvent flap_event(const AlertState& state, const char* type, TimePoint now) {
    AlertEvent e;
    e.type = type;
    const bool notified = !state.notified_id.empty();
    e.alert_id = notified ? state.notified_id : state.alert_id;
    e.level = e.previous = state.notified_level;
    e.at = now;
    e.opened_at = notified ? state.notified_opened_at : state.opened_at;
    if (!e.opened_at) e.opened_at = now;  // no alert: the event stands for itself
    return e;
}

void clear_ack(AlertState& state) {
    state.acked_id.clear();
    state.acked_by.clear();
    state.acked_at.reset();
    state.acked_level = Level::none;
}

// The events that bring the notified alert level with the true one; updates the notified
// fields. Returns: true when an event about the open alert was published.
bool publish_difference(AlertState& state, TimePoint now, std::vector<AlertEvent>& out) {
    bool told = false;
    if (!state.notified_id.empty() && state.notified_id != state.alert_id) {
        AlertEvent e;
        e.type = event::resolved;
        e.alert_id = state.notified_id;
        e.previous = state.notified_level;
        e.level = Level::none;
        e.at = now;
        e.opened_at = state.notified_opened_at;
        if (state.acked_id == state.notified_id) clear_ack(state);
        out.push_back(std::move(e));
        state.notified_id.clear();
        state.notified_level = Level::none;
        state.notified_opened_at.reset();
        state.notified_at.reset();
    }
    if (state.level == Level::none) return told;
    if (state.notified_id.empty() || state.level != state.notified_level) {
        AlertEvent e;
        e.alert_id = state.alert_id;
        e.previous = state.notified_id.empty() ? Level::none : state.notified_level;
        e.level = state.level;
        e.at = now;
        e.opened_at = state.opened_at;
        if (state.notified_id.empty()) {
            e.type = event::raised;
        } else if (state.level > state.notified_level) {
            e.type = event::escalated;
            if (state.acked_id == state.alert_id) clear_ack(state);
        } else {
            e.type = event::deescalated;
        }
        out.push_back(std::move(e));
        state.notified_id = state.alert_id;
        state.notified_level = state.level;
        state.notified_opened_at = state.opened_at;
        state.notified_at = now;
        told = true;
    }
    return told;
}

}  // namespace

double flap_percent(const AlertState& state, const AlertingParams& params) {
    const int transitions = clamp_window(params.flap_window) - 1;
    double sum = 0;
    for (int i = 0; i < transitions; ++i) {
        if (!(state.flap_history >> i & 1u)) continue;
        const int from_oldest = transitions - 1 - i;
        sum += 0.75 + 0.5 * from_oldest / double(transitions - 1);
    }
    return 100.0 * sum / transitions;
}

AdvanceResult advance(AlertState& state, const Reading& reading, TimePoint now,
                      const AlertingParams& params, const std::optional<ActiveSilence>& silence) {
    AdvanceResult r;
    if (state.evaluated_at && *state.evaluated_at >= now) return r;
    r.advanced = true;
    state.evaluated_at = now;

    // 1. Data gaps.
    const std::vector<DataGap> gaps_before = state.gaps;
    update_gaps(state, reading, now);

    // 2. Level: missing data or a failing plugin never lowers it.
    const bool failing = std::any_of(reading.indicators.begin(), reading.indicators.end(),
                                     [](const IndicatorReading& i) {
                                         return i.status == sdk::Status::error;
                                     });
    const bool may_lower = state.gaps.empty() && !failing;
    std::optional<AlertEvent> transition =
        step(state, reading.score, reading.floor, now, params, may_lower);
    // step() leaves the level this evaluation pointed to in `pending`, confirmed or not.
    const Level target = state.pending;

    // 3. Flapping, one sample per new reading or target change.
    std::optional<AlertEvent> flap;
    if (params.flap_high > 0) {
        const std::uint64_t fp = fingerprint(reading);
        if (state.flap_samples == 0 || fp != state.reading || target != state.flap_last) {
            const int window = clamp_window(params.flap_window);
            const bool changed = target != state.flap_last;
            state.flap_history =
                ((state.flap_history << 1) | (changed ? 1u : 0u)) & window_mask(window - 1);
            state.flap_last = target;
            state.reading = fp;
            state.flap_samples = std::min(state.flap_samples + 1, window);
            const double pct = flap_percent(state, params);
            if (!state.flapping && pct >= params.flap_high) {
                state.flapping = true;
                flap = flap_event(state, event::flapping_started, now);
            } else if (state.flapping && pct < params.flap_low) {
                state.flapping = false;
                flap = flap_event(state, event::flapping_stopped, now);
            }
        }
    } else if (state.flapping) {
        state.flapping = false;  // flap detection was turned off
        flap = flap_event(state, event::flapping_stopped, now);
    }

    // 4. Events.
    if (silence) {
        const std::string why = "silence " + std::to_string(silence->id);
        if (transition) r.held.push_back(*transition);
        if (flap) r.held.push_back(*flap);
        gap_changes(state, gaps_before, state.gaps, reading, now, r.held);
        for (auto& e : r.held) {
            e.held = why;
            e.silence_id = silence->id;
        }
        return r;
    }
    // Flapping as subscribers know it: a start and stop within a silence cancel out.
    if (state.flapping != state.notified_flapping) {
        r.published.push_back(flap_event(
            state, state.flapping ? event::flapping_started : event::flapping_stopped, now));
        state.notified_flapping = state.flapping;
    }
    bool told = false;
    if (state.flapping) {
        if (transition) {
            transition->held = "flapping";
            r.held.push_back(*transition);
        }
    } else {
        told = publish_difference(state, now, r.published);
    }
    if (!told && !state.flapping && state.level > Level::none &&
        state.notified_id == state.alert_id && params.repeat_every.count() > 0 &&
        state.notified_at && now - *state.notified_at >= params.repeat_every &&
        !(state.acked_id == state.alert_id && state.acked_level >= state.level)) {
        AlertEvent e;
        e.type = event::reminder;
        e.alert_id = state.alert_id;
        e.level = e.previous = state.level;
        e.at = now;
        e.opened_at = state.opened_at;
        r.published.push_back(std::move(e));
        state.notified_at = now;
    }
    // Gaps: what subscribers were told against what is open now.
    const std::vector<DataGap> told_gaps = state.notified_gaps;
    gap_changes(state, told_gaps, state.gaps, reading, now, r.published);
    state.notified_gaps = state.gaps;
    return r;
}

bool acknowledge(AlertState& state, const std::string& alert_id, const std::string& by,
                 TimePoint at) {
    if (alert_id.empty()) return false;
    Level level;
    if (alert_id == state.notified_id)
        level = state.notified_level;
    else if (alert_id == state.alert_id)
        level = state.level;
    else
        return false;
    state.acked_id = alert_id;
    state.acked_by = by;
    state.acked_at = at;
    state.acked_level = level;
    return true;
}

std::string gap_id(const std::string& locality, const DataGap& gap) {
    return locality + "/" + gap.indicator + "@" + compact_stamp(gap.since);
}

std::string make_alert_id(const std::string& locality, TimePoint opened_at) {
    return locality + "@" + compact_stamp(opened_at);
}

}  // namespace ews
