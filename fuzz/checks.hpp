// checks.hpp: one entry point per parser of hostile input, shared by the libFuzzer targets
// (fuzz/fuzz_<name>.cpp) and the regression tests (tests/unit/test_fuzz_regressions.cpp).
// Each feeds its bytes to the parser exactly as the daemon or ews-sub does, then checks what
// came out against the documented contract (DESIGN.md, docs/protocol.md, the headers).
// Returns: an empty string when the contract holds, else what was violated. A crash, a
// sanitizer report or an exception the contract does not allow is a failure of its own.
#pragma once

#include "config.hpp"
#include "ingest.hpp"
#include "ingest_endpoint.hpp"
#include "json_text.hpp"
#include "model.hpp"
#include "query.hpp"
#include "store.hpp"

#include "../tools/ews-sub/output.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace ews::fuzz {

// ---- helpers ------------------------------------------------------------------------------

inline bool is_id(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '.' || c == '-';
    });
}

// [a-z0-9_]+(\.[a-z0-9_]+)+
inline bool is_kind(std::string_view s) {
    std::size_t segments = 0, len = 0;
    for (char c : s) {
        if (c == '.') {
            if (len == 0) return false;
            ++segments;
            len = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
            ++len;
        } else {
            return false;
        }
    }
    return len > 0 && segments >= 1;
}

inline std::size_t line_count(std::string_view s) {
    return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')) + 1;
}

// Lines as the CSV reader counts them: ended by LF, CRLF or a lone CR.
inline std::size_t csv_line_count(std::string_view s) {
    std::size_t lines = 1;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (s[i] == '\n' || (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n'))) ++lines;
    return lines;
}

// A mkdtemp directory removed with its content when the object goes.
class ScratchDir {
public:
    ScratchDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "ews_fuzz_XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~ScratchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// ---- observations (CSV and JSON Lines) ----------------------------------------------------

// The rules the fuzz targets ingest under: every well-formed id is a known locality except
// those starting with "X" (so the unknown-locality path is reached too); now is fixed.
inline ObservationRules observation_rules() {
    ObservationRules r;
    r.known_locality = [](std::string_view id) { return !id.empty() && id.front() != 'X'; };
    r.now = TimePoint(std::chrono::sys_days(std::chrono::year{2026} / 12 / 1));
    r.future_tolerance = std::chrono::seconds(86400);
    return r;
}

inline std::string check_observation_parse(std::string_view content, const ObservationParse& p,
                                           const ObservationRules& rules, bool jsonl) {
    const std::string file = "input";
    const TimePoint latest = rules.now + rules.future_tolerance;
    // Each data row is accepted or rejected, once. A CSV whose header is refused has no rows
    // and its errors are about the header; a JSON Lines file without an object has one error.
    if (p.rows.size() > p.data_rows) return "more rows than data rows";
    if ((jsonl ? p.data_rows > 0 : !p.rows.empty()) && p.rows.size() + p.errors.size() != p.data_rows)
        return std::to_string(p.data_rows) + " data rows, but " + std::to_string(p.rows.size()) + " rows and " +
               std::to_string(p.errors.size()) + " errors";
    if (p.rows.empty() && p.errors.empty() && (jsonl || p.data_rows > 0)) return "no row and no error";
    if (jsonl && p.data_rows == 0 && p.errors.size() != 1) return "JSON Lines without an object: not one error";
    const std::size_t lines = jsonl ? line_count(content) : csv_line_count(content);
    std::size_t last_line = 0;
    for (const auto& e : p.errors) {
        if (e.file != file) return "error names file '" + e.file + "'";
        if (e.line < 1 || e.line > lines)
            return "error at line " + std::to_string(e.line) + " of " + std::to_string(lines) + ": " + e.reason;
        if (e.line < last_line) return "errors out of line order";
        last_line = e.line;
        if (e.reason.empty()) return "error without a reason";
        const std::string f = e.format();
        const std::string expected = file + ":" + std::to_string(e.line) + ":";
        if (f.rfind(expected, 0) != 0) return "RowError::format() gives '" + f + "'";
        if (!jsonl && e.column > 64 + 1) return "CSV error column " + std::to_string(e.column) + " beyond the field cap";
    }
    if (jsonl) {
        // JSON Lines columns are character columns within the line, or 0.
        std::vector<std::string_view> physical;
        for (std::size_t pos = 0;;) {
            const auto eol = content.find('\n', pos);
            physical.push_back(content.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos));
            if (eol == std::string_view::npos) break;
            pos = eol + 1;
        }
        for (const auto& e : p.errors)
            if (e.column > physical[e.line - 1].size() + 1)
                return "JSON Lines error column " + std::to_string(e.column) + " past the end of line " +
                       std::to_string(e.line) + " (" + std::to_string(physical[e.line - 1].size()) + " bytes)";
    }
    for (const auto& o : p.rows) {
        if (!is_id(o.locality) || !rules.known_locality(o.locality)) return "row with locality '" + o.locality + "'";
        if (o.time > latest) return "row in the future: " + format_time(o.time);
        const auto again = parse_time(format_time(o.time));
        if (!again || *again != o.time) return "row time does not round-trip: " + format_time(o.time);
        if (!is_kind(o.kind)) return "row with kind '" + o.kind + "'";
        if (!std::isfinite(o.value)) return "row with a non-finite value";
        if ((o.kind.rfind("school.", 0) == 0 || o.kind.rfind("incident.", 0) == 0) && o.value < 0)
            return "negative count accepted for " + o.kind;
        if (o.kind.rfind("presence.", 0) == 0 && (o.value < 0 || o.value > 1))
            return "confidence outside 0..1 accepted for " + o.kind;
        if (!std::isfinite(o.weight) || o.weight <= 0) return "row with weight <= 0 or not finite";
        if (o.source.empty() || o.source.size() > 64 ||
            !std::all_of(o.source.begin(), o.source.end(), [](char c) { return is_id(std::string(1, c)) || c == ':'; }))
            return "row with source '" + o.source + "'";
    }
    return {};
}

inline std::string check_observations(std::string_view content, IngestFormat format) {
    const auto rules = observation_rules();
    const bool jsonl = format == IngestFormat::jsonl;
    const ObservationParse p = jsonl ? parse_observations_jsonl(content, "input", rules)
                                     : parse_observations_csv(content, "input", rules);
    if (auto problem = check_observation_parse(content, p, rules, jsonl); !problem.empty()) return problem;
    // The dispatcher picks the same parser, and parsing is deterministic.
    const ObservationParse q = parse_observations(content, "input", format, rules);
    if (q.rows.size() != p.rows.size() || q.errors.size() != p.errors.size() || q.data_rows != p.data_rows)
        return "a second parse of the same bytes differs";
    for (std::size_t i = 0; i < p.errors.size(); ++i)
        if (p.errors[i].format() != q.errors[i].format()) return "a second parse gives another error";
    return {};
}

inline std::string check_observations_csv(std::string_view content) {
    return check_observations(content, IngestFormat::csv);
}
inline std::string check_observations_jsonl(std::string_view content) {
    return check_observations(content, IngestFormat::jsonl);
}

// ---- TOML configuration -------------------------------------------------------------------

// Writes `content` to DIR/ewsd.toml and loads it as ewsd --check-config would, without
// reading key files (their paths come from the input). Every problem must be a ConfigError
// "FILE:LINE:COLUMN: ..." with a line of the file, or "FILE: KEY: ..." when the key is
// missing altogether.
inline std::string check_config(std::string_view content, const std::filesystem::path& dir) {
    const std::filesystem::path file = dir / "ewsd.toml";
    {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out.write(content.data(), static_cast<std::streamsize>(content.size()));
        if (!out) return "cannot write " + file.string();
    }
    const std::string label = file.string();
    Config c;
    try {
        c = load_config(file, LoadOptions{.read_key_files = false});
    } catch (const ConfigError& e) {
        const std::string what = e.what();
        if (what.rfind(label, 0) != 0) return "ConfigError without the file name: " + what;
        std::string_view rest = std::string_view(what).substr(label.size());
        if (rest.size() < 3 || rest[0] != ':') return "ConfigError without a location or key: " + what;
        rest.remove_prefix(1);
        if (rest[0] == ' ') {
            // "FILE: KEY: what": a key, then a reason.
            rest.remove_prefix(1);
            const auto colon = rest.find(": ");
            if (colon == 0 || colon == std::string_view::npos || colon + 2 >= rest.size())
                return "ConfigError without a key: " + what;
            return {};
        }
        auto number = [&](std::size_t& n) {
            std::size_t digits = 0;
            n = 0;
            while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9' && digits < 12)
                n = n * 10 + static_cast<std::size_t>(rest[digits++] - '0');
            rest.remove_prefix(digits);
            return digits > 0;
        };
        std::size_t line = 0, column = 0;
        if (!number(line) || rest.empty() || rest[0] != ':') return "ConfigError without LINE: " + what;
        rest.remove_prefix(1);
        if (!number(column) || rest.substr(0, 2) != ": ") return "ConfigError without COLUMN: " + what;
        if (line < 1 || line > line_count(content) || column < 1)
            return "ConfigError at " + std::to_string(line) + ":" + std::to_string(column) + " outside the file (" +
                   std::to_string(line_count(content)) + " lines): " + what;
        if (rest.size() <= 2) return "ConfigError without a reason: " + what;
        return {};
    } catch (const std::exception& e) {
        return std::string("load_config threw something other than ConfigError: ") + e.what();
    }
    // Loaded: every documented range holds.
    if (!c.state_dir.is_absolute() || !c.plugin_dir.is_absolute() || !c.spool_dir.is_absolute())
        return "relative path left in a loaded configuration";
    if (c.evaluate_every.count() < 1 || c.heartbeat.count() < 1) return "interval below 1 s";
    if (c.plugin_budget.count() < 1 || c.plugin_budget.count() > 60000) return "plugin_budget_ms out of range";
    if (c.quarantine_after < 1 || c.quarantine_after > 1000) return "quarantine_after out of range";
    if (c.future_tolerance.count() < 0) return "negative future_tolerance_s";
    for (std::size_t i = 0; i < 3; ++i) {
        const auto& l = c.levels[i];
        if (!(l.raise >= 0 && l.raise <= 100 && l.clear >= 0 && l.clear <= 100)) return "threshold outside 0..100";
        if (!(l.clear < l.raise)) return "clear not below raise";
        if (i > 0 && !(c.levels[i - 1].raise < l.raise)) return "raise thresholds not increasing";
    }
    if (c.raise_after < 1 || c.raise_after > 100 || c.clear_after < 1 || c.clear_after > 100)
        return "raise_after/clear_after out of range";
    if (c.flap_window < 3 || c.flap_window > 32) return "flapping window out of range";
    if (c.flap_high > 0 && !(c.flap_low < c.flap_high)) return "flapping low not below high";
    if (c.min_cell < 1 || c.min_cell > 1000) return "min_cell out of range";
    for (const auto& [name, w] : c.weights)
        if (!std::isfinite(w) || w <= 0) return "weight of " + name + " not > 0";
    std::set<std::string> names, binds;
    for (const auto& p : c.publish) {
        if (!is_id(p.name)) return "publish name '" + p.name + "'";
        if (!names.insert(p.name).second) return "duplicate publish name '" + p.name + "'";
        if (p.bind.empty()) return "publish endpoint without a bind";
        if (!binds.insert(p.bind).second) return "bind used twice: " + p.bind;
        if (!p.query_bind.empty() && !binds.insert(p.query_bind).second) return "bind used twice: " + p.query_bind;
        if (p.curve.secret_key_file.empty() != p.curve.authorized_keys_dir.empty()) return "half a CURVE pair";
    }
    if (!c.query_bind.empty() && !binds.insert(c.query_bind).second) return "query bind used twice";
    if (!c.ingest_bind.empty() && !binds.insert(c.ingest_bind).second) return "ingest bind used twice";
    if (!c.query_endpoint.empty() && !names.count(c.query_endpoint)) return "query.endpoint names no endpoint";
    if (c.keep_observations && c.keep_observations->count() < 1) return "observations_days below 1";
    if (c.keep_alerts && c.keep_alerts->count() < 1) return "alerts_days below 1";
    // The daemon adds these to its clocks (app.cpp: steady_clock::now() + evaluate_every;
    // ingest: now + future_tolerance, printed as RFC 3339; retention: now - days): a value the
    // loader accepts must not overflow that arithmetic (signed overflow is undefined) nor leave
    // the years RFC 3339 can write.
    {
        using namespace std::chrono;
        const auto steady_left = (steady_clock::duration::max() - steady_clock::now().time_since_epoch());
        for (auto [d, key] : {std::pair{c.evaluate_every, "evaluate_every_s"}, std::pair{c.heartbeat, "heartbeat_s"}})
            if (d.count() > duration_cast<seconds>(steady_left).count())
                return std::string("daemon.") + key + " = " + std::to_string(d.count()) +
                       " accepted, but overflows steady_clock::now() + it";
        const auto now = floor<seconds>(system_clock::now());
        const sys_seconds last_rfc3339 = sys_days(year{9999} / 12 / 31);
        const sys_seconds first_rfc3339 = sys_days(year{0} / 1 / 1);
        if (c.future_tolerance.count() > (last_rfc3339 - now).count())
            return "ingest.future_tolerance_s = " + std::to_string(c.future_tolerance.count()) +
                   " accepted, but now + it is past the year 9999";
        for (auto [keep, key] : {std::pair{c.keep_observations, "observations_days"}, std::pair{c.keep_alerts, "alerts_days"}})
            if (keep && keep->count() > (now - first_rfc3339).count() / 86400)
                return std::string("retention.") + key + " = " + std::to_string(keep->count()) +
                       " accepted, but now - it is before the year 0";
    }
    for (const auto& [name, params] : c.plugin_params) {
        (void)params;
        if (name.empty() || !std::all_of(name.begin(), name.end(), [](char ch) {
                return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
            }))
            return "plugin name '" + name + "'";
    }
    for (const auto& [level, steps] : c.actions) {
        (void)steps;
        if (level == Level::none) return "actions for level none";
    }
    return {};
}

// ---- query requests -----------------------------------------------------------------------

// A store with a known outbox, as tests/unit/test_query.cpp builds it: endpoint "main" holds
// seqs 1..6 (open alerts: KE-1 newest row 3, UG-2 row 5, KE-2 row 6); endpoint "other" seq 1.
class QueryFixture {
public:
    QueryFixture() : store_(std::make_unique<Store>(dir_.path() / "ews.db")) {
        auto row = [](const std::string& endpoint, std::uint64_t seq, const std::string& region,
                      const std::string& locality, const std::string& alert_id, const std::string& event) {
            OutboxRow r;
            r.endpoint = endpoint;
            r.seq = seq;
            r.topic = "alert/" + region + "/" + locality + "/";
            r.alert_id = alert_id;
            r.locality = locality;
            r.payload = nlohmann::json{{"schema", "ews.alert/1"}, {"seq", seq}, {"id", alert_id}, {"event", event},
                                       {"locality", {{"id", locality}, {"name", locality}, {"region", region}}}}
                            .dump();
            return r;
        };
        auto state = [](const std::string& locality, Level level, const std::string& alert_id) {
            AlertState s;
            s.locality = locality;
            s.level = level;
            s.alert_id = alert_id;
            s.notified_level = level;
            s.notified_id = alert_id;
            return s;
        };
        store_->commit_evaluation({}, {row("main", 1, "KE/KE-03", "KE-1", "A1", "raised"),
                                       row("main", 2, "UG/UG-1", "UG-1", "A2", "raised"),
                                       row("other", 1, "KE/KE-03", "KE-1", "A1", "raised")});
        store_->commit_evaluation({state("KE-1", Level::warning, "A1"), state("UG-1", Level::none, ""),
                                   state("UG-2", Level::watch, "A3"), state("KE-2", Level::watch, "A4")},
                                  {row("main", 3, "KE/KE-03", "KE-1", "A1", "escalated"),
                                   row("main", 4, "UG/UG-1", "UG-1", "A2", "resolved"),
                                   row("main", 5, "UG/UG-1", "UG-2", "A3", "raised"),
                                   row("main", 6, "KE/KE-04", "KE-2", "A4", "raised")});
    }
    Store& store() { return *store_; }
    static constexpr std::uint64_t last_seq = 6;
    static const char* status_json() { return R"({"uptime_s":3,"localities":2})"; }

private:
    ScratchDir dir_;
    std::unique_ptr<Store> store_;
};

inline std::string check_query(std::string_view request_bytes, QueryFixture& fixture) {
    using Json = nlohmann::ordered_json;
    const std::string request(request_bytes);
    const std::string reply =
        answer_query(request, fixture.store(), "main", [] { return std::string(QueryFixture::status_json()); });
    const Json r = Json::parse(reply, nullptr, false);
    if (!r.is_object()) return "reply is not a JSON object: " + reply.substr(0, 200);
    if (r.contains("error")) {
        if (r.size() != 1 || !r["error"].is_string() || r["error"].get_ref<const std::string&>().empty())
            return "malformed error reply: " + reply.substr(0, 200);
        if (r["error"].get_ref<const std::string&>().rfind("server error", 0) == 0)
            return "a request made the server fail: " + reply.substr(0, 300);
        return {};
    }
    // A successful reply needs a request that is an object with a known op.
    const Json q = Json::parse(request, nullptr, false);
    if (!q.is_object() || !q.contains("op") || !q["op"].is_string()) return "answer to a request without an op";
    const std::string op = q["op"];
    if (op == "status") {
        if (r != Json::parse(QueryFixture::status_json())) return "status reply differs from the status source";
        return {};
    }
    if (op == "snapshot") {
        if (!r.contains("alerts") || !r["alerts"].is_array() || !r.contains("seq") || r["seq"] != QueryFixture::last_seq)
            return "malformed snapshot reply: " + reply.substr(0, 200);
        const std::string prefix = q.contains("prefix") ? q["prefix"].get<std::string>() : "alert/";
        if (prefix.rfind("alert/", 0) != 0) return "snapshot accepted prefix '" + prefix + "'";
        for (const auto& a : r["alerts"]) {
            const std::string topic = "alert/" + a["locality"]["region"].get<std::string>() + "/" +
                                      a["locality"]["id"].get<std::string>() + "/";
            if (topic.rfind(prefix, 0) != 0) return "snapshot alert " + topic + " outside prefix " + prefix;
        }
        return {};
    }
    if (op != "replay") return "answer to unknown op '" + op + "'";
    if (!q.contains("since") || !q["since"].is_number_unsigned()) return "replay answered without a valid since";
    const auto since = q["since"].get<std::uint64_t>();
    std::uint64_t limit = 1000;
    if (q.contains("limit")) {
        if (!q["limit"].is_number_unsigned() || q["limit"] == 0) return "replay answered with an invalid limit";
        limit = std::min<std::uint64_t>(q["limit"].get<std::uint64_t>(), 10000);
    }
    const std::string prefix = q.contains("prefix") ? q["prefix"].get<std::string>() : "";
    if (!r.contains("events") || !r["events"].is_array() || !r.contains("last_seq") ||
        !r["last_seq"].is_number_unsigned() || !r.contains("more") || !r["more"].is_boolean())
        return "malformed replay reply: " + reply.substr(0, 200);
    if (r["events"].size() > limit) return "replay returned more than limit";
    std::uint64_t previous = since;
    for (const auto& e : r["events"]) {
        const auto seq = e["payload"]["seq"].get<std::uint64_t>();
        if (seq <= previous) return "replayed seqs not ascending after since";
        previous = seq;
        if (e["topic"].get<std::string>().rfind(prefix, 0) != 0) return "replayed event outside prefix";
    }
    const auto last = r["last_seq"].get<std::uint64_t>();
    if (last < previous || last < since) return "last_seq behind the events or since";
    if (!r["more"].get<bool>() && last != std::max(since, QueryFixture::last_seq))
        return "replay ended early without more";
    if (r["more"].get<bool>() && last >= QueryFixture::last_seq) return "more set at the end of the outbox";
    return {};
}

// ---- the ingest endpoint's header frame ---------------------------------------------------

// Input: the header frame of an ingest request (docs/protocol.md, "Ingest endpoint"), parsed
// as IngestEndpoint::handle does (parse_ingest_header). The result is judged against an
// independent reading of the contract: the header is a JSON object with only "format"
// ("csv" or "jsonl", required), "name" (a string of 1 to 200 bytes without C0 controls or
// DEL) and "policy" ("partial" or "reject_file"). A header that meets it must be accepted
// with exactly those values (and the defaults for what it leaves out), and must survive
// ingest_header_json and a second parse unchanged; one that does not must be refused with
// IngestRequestError alone, whose message starts "header: " and makes a reply that parses
// back as {"error": message}.
inline std::string check_ingest_header(std::string_view input) {
    using Json = nlohmann::ordered_json;
    constexpr auto fallback = RejectPolicy::partial;
    // The contract, read independently of the parser.
    std::optional<IngestHeader> expected;
    const Json j = Json::parse(input, nullptr, false);
    auto is_one_of = [](const Json& v, std::initializer_list<const char*> allowed) {
        if (!v.is_string()) return false;
        const auto& text = v.get_ref<const std::string&>();
        return std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return text == a; });
    };
    auto good_name = [](const Json& v) {
        if (!v.is_string()) return false;
        const auto& text = v.get_ref<const std::string&>();
        return !text.empty() && text.size() <= 200 &&
               std::none_of(text.begin(), text.end(), [](char c) {
                   return static_cast<unsigned char>(c) < 0x20 || c == 0x7F;
               });
    };
    if (j.is_object() && j.contains("format") && is_one_of(j["format"], {"csv", "jsonl"}) &&
        std::all_of(j.items().begin(), j.items().end(),
                    [](const auto& kv) {
                        return kv.key() == "format" || kv.key() == "name" || kv.key() == "policy";
                    }) &&
        (!j.contains("name") || good_name(j["name"])) &&
        (!j.contains("policy") || is_one_of(j["policy"], {"partial", "reject_file"}))) {
        IngestHeader h;
        h.format = j["format"] == "csv" ? IngestFormat::csv : IngestFormat::jsonl;
        if (j.contains("name")) h.name = j["name"].get<std::string>();
        h.policy = !j.contains("policy")          ? fallback
                   : j["policy"] == "reject_file" ? RejectPolicy::reject_file
                                                  : RejectPolicy::partial;
        expected = h;
    }
    auto same = [](const IngestHeader& a, const IngestHeader& b) {
        return a.format == b.format && a.name == b.name && a.policy == b.policy;
    };
    try {
        const IngestHeader got = parse_ingest_header(input, fallback);
        if (!expected) return "accepted a header the contract refuses";
        if (!same(got, *expected)) return "accepted the header with other values than it spells";
        // What a client builds from it (ewsctl) reads back the same, whatever the default.
        const IngestHeader again =
            parse_ingest_header(ingest_header_json(got), RejectPolicy::reject_file);
        if (!same(again, got)) return "ingest_header_json does not read back the same header";
        return {};
    } catch (const IngestRequestError& e) {
        if (expected) return std::string("refused a valid header: ") + e.what();
        const std::string what = e.what();
        if (what.rfind("header: ", 0) != 0) return "refusal not about the header: " + what;
        const Json reply = Json::parse(json_text(Json{{"error", what}}), nullptr, false);
        if (!reply.is_object() || reply.size() != 1 || !reply.contains("error") ||
            !reply["error"].is_string())
            return "the refusal does not make a JSON error reply: " + what.substr(0, 200);
        return {};
    }
    // Any other exception escapes: the fuzzer reports it as a crash.
}

// ---- the subscriber's message handling ----------------------------------------------------

// Input: the topic frame, a '\n', the payload frame. Handled as ews-sub's Subscriber::receive
// does (tools/ews-sub/subscriber.cpp): the payload must be a JSON object with the topic's
// schema and an unsigned seq; an accepted alert or operational event is then filtered and
// printed in every --format. What is printed must be safe for a terminal and well-formed.
inline std::string check_printed(const std::string& text, const char* what, bool allow_cr) {
    for (char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && c != '\n' && c != '\t' && !(allow_cr && c == '\r')) || c == 0x7f)
            return std::string(what) + " prints control character " + std::to_string(c);
    }
    if (text.empty() || text.back() != '\n') return std::string(what) + " does not end with a line break";
    return {};
}

// Returns: the fields of one RFC 4180 record, or nullopt when `row` is not exactly one.
inline std::optional<std::vector<std::string>> csv_fields(std::string_view row) {
    std::vector<std::string> fields(1);
    std::size_t i = 0;
    for (;;) {
        std::string& f = fields.back();
        if (i < row.size() && row[i] == '"') {
            for (++i;; ++i) {
                if (i >= row.size()) return std::nullopt;
                if (row[i] == '"') {
                    if (i + 1 < row.size() && row[i + 1] == '"') {
                        f += '"';
                        ++i;
                        continue;
                    }
                    ++i;
                    break;
                }
                f += row[i];
            }
        } else {
            while (i < row.size() && row[i] != ',' && row[i] != '\n') {
                if (row[i] == '"' || row[i] == '\r') return std::nullopt;
                f += row[i++];
            }
        }
        if (i >= row.size()) return std::nullopt;
        if (row[i] == '\n') return i + 1 == row.size() ? std::optional(fields) : std::nullopt;
        if (row[i] != ',') return std::nullopt;
        ++i;
        fields.emplace_back();
    }
}

inline std::string check_sub_message(std::string_view input) {
    using Json = sub::Json;
    const auto nl = input.find('\n');
    const std::string topic(input.substr(0, nl));
    const std::string payload_text(nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1));

    if (sub::nested_deeper_than(payload_text, sub::max_json_depth)) return {};  // refused, unparsed
    const Json payload = Json::parse(payload_text, nullptr, false);
    if (!payload.is_object()) return {};  // refused: "payload is not a JSON object"
    auto schema_is = [&](const char* schema) {
        const auto it = payload.find("schema");
        return it != payload.end() && *it == schema;
    };
    const auto seq_it = payload.find("seq");
    const bool has_seq = seq_it != payload.end() && seq_it->is_number_unsigned();
    const bool ops = topic.rfind("ops/", 0) == 0;
    const bool alert = topic.rfind("alert/", 0) == 0;
    if (topic == "hb/" || (!ops && !alert)) return {};  // heartbeats print nothing
    if (!schema_is(ops ? "ews.ops/1" : "ews.alert/1") || !has_seq) return {};  // refused

    // json: one line that parses back to the payload.
    const std::string line = sub::json_line(payload);
    if (auto p = check_printed(line, "--format json", false); !p.empty()) return p;
    if (std::count(line.begin(), line.end(), '\n') != 1) return "--format json spans lines";
    const Json back = Json::parse(line, nullptr, false);
    if (back.is_discarded()) return "--format json prints invalid JSON";
    if (back != payload) return "--format json does not print what was received";

    if (ops) return check_printed(sub::pretty_ops(payload), "pretty ops", false);

    // Filters: a stricter minimum level never lets more through; topics outside the prefix
    // never pass.
    sub::Filter all;
    bool previous = true;
    for (int rank = 0; rank <= 4; ++rank) {
        all.min_rank = rank;
        const bool now = sub::passes(all, topic, payload);
        if (now && !previous) return "min level " + std::to_string(rank) + " lets through what a lower one did not";
        previous = now;
    }
    sub::Filter region;
    region.topic_prefix = "alert/KE/";
    region.events = {"raised", "resolved"};
    if (sub::passes(region, topic, payload)) {
        if (topic.rfind("alert/KE/", 0) != 0) return "region filter lets through topic " + sub::printable(topic);
        const auto ev = payload.find("event");
        if (ev == payload.end() || !ev->is_string() || !region.events.count(ev->get<std::string>()))
            return "event filter lets through another event";
    }

    if (auto p = check_printed(sub::pretty_alert(payload), "pretty", false); !p.empty()) return p;
    const std::string row = sub::csv_row(payload);
    if (auto p = check_printed(row, "--format csv", true); !p.empty()) return p;
    const auto fields = csv_fields(row);
    if (!fields) return "--format csv row is not one RFC 4180 record: " + sub::printable(row.substr(0, 200));
    const auto header = csv_fields(sub::csv_header());
    if (!header || fields->size() != header->size())
        return "--format csv row has " + std::to_string(fields->size()) + " fields, header " +
               std::to_string(header ? header->size() : 0);
    return {};
}

// The body of every fuzz target's LLVMFuzzerTestOneInput: runs `check` on the input as text
// and aborts, printing the broken contract, when it reports one (libFuzzer then keeps the
// input as a crash). Returns: 0, libFuzzer's "input done".
template <class Check>
int enforce(const std::uint8_t* data, std::size_t size, Check&& check) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (const std::string problem = check(input); !problem.empty()) {
        std::fprintf(stderr, "contract broken: %s\n", problem.c_str());
        std::abort();
    }
    return 0;
}

}  // namespace ews::fuzz
