// config.cpp: loads the TOML file with toml++ and validates every section, key, type and
// range against config.hpp. Unknown sections and keys are errors (a typo must not silently
// fall back to a default), except inside [plugins.<name>], which the plugin validates.
#include "config.hpp"

#include "curve.hpp"
#include "metrics.hpp"

#include <toml++/toml.h>

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <set>
#include <sstream>

namespace ews {
namespace {

std::string_view type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::table: return "table";
        case toml::node_type::array: return "array";
        case toml::node_type::string: return "string";
        case toml::node_type::integer: return "integer";
        case toml::node_type::floating_point: return "float";
        case toml::node_type::boolean: return "boolean";
        case toml::node_type::date: return "date";
        case toml::node_type::time: return "time";
        case toml::node_type::date_time: return "date-time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

// Renders a scalar for "got ..." in messages; other types are named by their type.
std::string describe_value(const toml::node& n) {
    if (auto* i = n.as_integer()) return std::to_string(i->get());
    if (auto* f = n.as_floating_point()) {
        std::ostringstream out;
        out << f->get();
        return out.str();
    }
    if (auto* s = n.as_string()) return "'" + s->get() + "'";
    return std::string(type_name(n));
}

std::string join(std::initializer_list<std::string_view> names) {
    std::string out;
    for (auto n : names) {
        if (!out.empty()) out += ", ";
        out += n;
    }
    return out;
}

// Largest evaluate_every_s, heartbeat_s and future_tolerance_s: 366 days, as repeat_every_s.
constexpr std::int64_t max_interval_s = 366LL * 86400;
// Largest observations_days and alerts_days: 100 years.
constexpr std::int64_t max_retention_days = 36600;

bool is_name_char(char c, bool allow_upper) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           (allow_upper && ((c >= 'A' && c <= 'Z') || c == '.' || c == '-'));
}

// [a-z0-9_]+ (plugin names, as in sdk::Descriptor) or [A-Za-z0-9_.-]+ (endpoint names).
bool is_name(std::string_view s, bool allow_upper) {
    if (s.empty()) return false;
    for (char c : s)
        if (!is_name_char(c, allow_upper)) return false;
    return true;
}

// A region prefix: segments [A-Za-z0-9_.-]+ separated by '/', an optional trailing '/'.
bool is_region_prefix(std::string_view s) {
    if (!s.empty() && s.back() == '/') s.remove_suffix(1);
    if (s.empty()) return false;
    std::size_t start = 0;
    while (start <= s.size()) {
        auto end = s.find('/', start);
        if (end == std::string_view::npos) end = s.size();
        if (!is_name(s.substr(start, end - start), true)) return false;
        start = end + 1;
    }
    return true;
}

class Loader {
public:
    Loader(std::string label, std::filesystem::path base, LoadOptions options)
        : label_(std::move(label)), base_(std::move(base)), options_(options) {}

    Config load(const toml::table& root, std::filesystem::path absolute_file);

private:
    std::string where(const toml::source_region& r) const {
        if (r.begin.line == 0) return label_;
        return label_ + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
    }
    [[noreturn]] void fail(const toml::source_region& at, std::string_view key,
                           std::string_view what) const {
        throw ConfigError(where(at) + ": " + std::string(key) + ": " + std::string(what));
    }
    [[noreturn]] void fail(const toml::node& at, std::string_view key,
                           std::string_view what) const {
        fail(at.source(), key, what);
    }
    [[noreturn]] void fail_missing(std::string_view key) const {
        throw ConfigError(label_ + ": " + std::string(key) + ": required key is missing");
    }
    [[noreturn]] void fail_type(const toml::node& n, std::string_view key,
                                std::string_view expected) const {
        fail(n, key, "expected " + std::string(expected) + ", got " + std::string(type_name(n)));
    }

    static std::string dotted(std::string_view prefix, std::string_view key) {
        return prefix.empty() ? std::string(key) : std::string(prefix) + "." + std::string(key);
    }

    // Every key of `t` must be one of `allowed`.
    void check_keys(const toml::table& t, std::string_view prefix,
                    std::initializer_list<std::string_view> allowed, bool sections) const {
        for (auto&& [k, v] : t) {
            bool ok = false;
            for (auto a : allowed) ok = ok || a == k.str();
            if (!ok)
                fail(k.source().begin.line ? k.source() : v.source(), dotted(prefix, k.str()),
                     std::string(sections ? "unknown section" : "unknown key") +
                         " (expected one of: " + join(allowed) + ")");
        }
    }

    // Returns: the sub-table `key` of `t`, nullptr when absent. Throws when not a table.
    const toml::table* table_at(const toml::table& t, std::string_view prefix,
                                std::string_view key) const {
        const toml::node* n = t.get(key);
        if (!n) return nullptr;
        if (!n->is_table()) fail_type(*n, dotted(prefix, key), "a table");
        return n->as_table();
    }

    std::optional<std::int64_t> get_int(const toml::table& t, std::string_view prefix,
                                        std::string_view key, std::int64_t min,
                                        std::optional<std::int64_t> max) const {
        const toml::node* n = t.get(key);
        if (!n) return std::nullopt;
        std::string expected;
        if (max)
            expected = "an integer in " + std::to_string(min) + ".." + std::to_string(*max);
        else if (min == 1)
            expected = "a positive integer";
        else if (min == 0)
            expected = "a non-negative integer";
        else
            expected = "an integer >= " + std::to_string(min);
        auto* i = n->as_integer();
        if (!i) fail_type(*n, dotted(prefix, key), expected);
        if (i->get() < min || (max && i->get() > *max))
            fail(*n, dotted(prefix, key), "expected " + expected + ", got " + describe_value(*n));
        return i->get();
    }

    // get_int() with `min` only, then at most `max` (`what` says how long that is): the upper
    // bounds keep the daemon's clock arithmetic (steady_clock::now() + interval, now +
    // tolerance, now - retention) from overflowing.
    std::optional<std::int64_t> get_bounded(const toml::table& t, std::string_view prefix,
                                            std::string_view key, std::int64_t min, std::int64_t max,
                                            std::string_view what) const {
        auto v = get_int(t, prefix, key, min, std::nullopt);
        if (v && *v > max)
            fail(*t.get(key), dotted(prefix, key),
                 "expected at most " + std::to_string(max) + " (" + std::string(what) + "), got " +
                     std::to_string(*v));
        return v;
    }

    // A finite number (TOML integer or float) checked by `in_range`, described by `expected`.
    template <class InRange>
    std::optional<double> get_number(const toml::table& t, std::string_view prefix,
                                     std::string_view key, std::string_view expected,
                                     InRange in_range) const {
        const toml::node* n = t.get(key);
        if (!n) return std::nullopt;
        double v = 0;
        if (auto* i = n->as_integer())
            v = static_cast<double>(i->get());
        else if (auto* f = n->as_floating_point())
            v = f->get();
        else
            fail_type(*n, dotted(prefix, key), expected);
        if (!std::isfinite(v) || !in_range(v))
            fail(*n, dotted(prefix, key),
                 "expected " + std::string(expected) + ", got " + describe_value(*n));
        return v;
    }

    std::optional<std::string> get_string(const toml::table& t, std::string_view prefix,
                                          std::string_view key, bool non_empty) const {
        const toml::node* n = t.get(key);
        if (!n) return std::nullopt;
        auto* s = n->as_string();
        if (!s) fail_type(*n, dotted(prefix, key), non_empty ? "a non-empty string" : "a string");
        if (non_empty && s->get().empty())
            fail(*n, dotted(prefix, key), "expected a non-empty string, got ''");
        return s->get();
    }

    std::optional<std::filesystem::path> get_path(const toml::table& t, std::string_view prefix,
                                                  std::string_view key) const {
        auto s = get_string(t, prefix, key, true);
        if (!s) return std::nullopt;
        std::filesystem::path p(*s);
        if (p.is_relative()) p = base_ / p;
        return p.lexically_normal();
    }

    std::vector<std::string> get_string_list(const toml::node& n, std::string_view key) const {
        auto* arr = n.as_array();
        if (!arr) fail_type(n, key, "an array of strings");
        std::vector<std::string> out;
        for (auto& el : *arr) {
            auto* s = el.as_string();
            if (!s)
                fail(el, key, "expected an array of strings, got an element of type " +
                                  std::string(type_name(el)));
            out.push_back(s->get());
        }
        return out;
    }

    CurveKeys get_curve(const toml::table& t, const std::string& prefix) const;

    void load_daemon(const toml::table& root, Config& c) const;
    void load_ingest(const toml::table& root, Config& c) const;
    void check_ingest_bind(const toml::table& root, const Config& c) const;
    void load_publish(const toml::table& root, Config& c) const;
    void load_query(const toml::table& root, Config& c) const;
    void check_bind_free(const toml::node& at, const std::string& key, const std::string& bind,
                         const Config& c) const;
    void load_scoring(const toml::table& root, Config& c) const;
    void load_privacy(const toml::table& root, Config& c) const;
    void load_metrics(const toml::table& root, Config& c) const;
    void load_retention(const toml::table& root, Config& c) const;
    void load_plugins(const toml::table& root, Config& c) const;
    void load_actions(const toml::table& root, Config& c) const;
    sdk::ParamValue plugin_value(const toml::node& n, const std::string& key) const;

    std::string label_;            // the file name as given, prefix of every message
    std::filesystem::path base_;   // directory that relative paths are resolved against
    LoadOptions options_;
};

Config Loader::load(const toml::table& root, std::filesystem::path absolute_file) {
    check_keys(root, "",
               {"daemon", "ingest", "publish", "query", "metrics", "scoring", "privacy", "retention",
                "plugins", "actions"},
               true);
    Config c;
    c.file = std::move(absolute_file);
    load_daemon(root, c);
    load_ingest(root, c);
    load_publish(root, c);
    load_query(root, c);
    check_ingest_bind(root, c);
    load_scoring(root, c);
    load_privacy(root, c);
    load_metrics(root, c);
    load_retention(root, c);
    load_plugins(root, c);
    load_actions(root, c);
    return c;
}

// curve_secret_key_file and authorized_keys_dir of one endpoint: both or neither. The secret
// file must parse and hold a secret key nobody but its owner and group can read; the
// directory must be listable (keys in it that do not parse are logged by the daemon).
CurveKeys Loader::get_curve(const toml::table& t, const std::string& prefix) const {
    static constexpr std::string_view secret_key = "curve_secret_key_file";
    static constexpr std::string_view dir_key = "authorized_keys_dir";
    CurveKeys k;
    auto secret = get_path(t, prefix, secret_key);
    auto dir = get_path(t, prefix, dir_key);
    if (!secret && !dir) return k;
    if (!secret || !dir) {
        const std::string_view given = secret ? secret_key : dir_key;
        const std::string_view missing = secret ? dir_key : secret_key;
        fail(*t.get(given), dotted(prefix, given),
             "needs " + std::string(missing) + " as well: CURVE takes both keys or neither");
    }
    k.secret_key_file = *secret;
    k.authorized_keys_dir = *dir;
    if (!options_.read_key_files) return k;
    const toml::node& secret_at = *t.get(secret_key);
    curve::Certificate cert;
    try {
        cert = curve::read_certificate(*secret);
    } catch (const std::runtime_error& e) {
        fail(secret_at, dotted(prefix, secret_key), e.what());
    }
    if (!cert.secret_key)
        fail(secret_at, dotted(prefix, secret_key),
             secret->string() + " holds no secret-key: name the server's NAME.key_secret, not NAME.key");
    struct stat st {};
    if (::stat(secret->c_str(), &st) == 0 && (st.st_mode & 0007) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
        fail(secret_at, dotted(prefix, secret_key),
             secret->string() + " is open to every user (mode " + mode + "); expected 0600 or 0640 (chmod o-rwx " +
                 secret->string() + ")");
    }
    try {
        (void)curve::load_authorized(*dir);
    } catch (const std::runtime_error& e) {
        fail(*t.get(dir_key), dotted(prefix, dir_key), e.what());
    }
    return k;
}

void Loader::load_daemon(const toml::table& root, Config& c) const {
    const toml::table* t = table_at(root, "", "daemon");
    if (!t) fail_missing("daemon.state_dir");
    check_keys(*t, "daemon",
               {"state_dir", "plugin_dir", "evaluate_every_s", "heartbeat_s", "log_level",
                "plugin_budget_ms", "quarantine_after"},
               false);
    auto state = get_path(*t, "daemon", "state_dir");
    if (!state) fail_missing("daemon.state_dir");
    c.state_dir = *state;
    auto plugins = get_path(*t, "daemon", "plugin_dir");
    if (!plugins) fail_missing("daemon.plugin_dir");
    c.plugin_dir = *plugins;
    if (auto v = get_bounded(*t, "daemon", "evaluate_every_s", 1, max_interval_s, "366 days"))
        c.evaluate_every = std::chrono::seconds(*v);
    if (auto v = get_bounded(*t, "daemon", "heartbeat_s", 1, max_interval_s, "366 days"))
        c.heartbeat = std::chrono::seconds(*v);
    if (auto v = get_int(*t, "daemon", "plugin_budget_ms", 1, 60000))
        c.plugin_budget = std::chrono::milliseconds(*v);
    if (auto v = get_int(*t, "daemon", "quarantine_after", 1, 1000))
        c.quarantine_after = static_cast<int>(*v);
    if (auto v = get_string(*t, "daemon", "log_level", false)) {
        static constexpr std::string_view levels[] = {"trace", "debug",    "info", "warn",
                                                      "error", "critical", "off"};
        bool ok = false;
        for (auto l : levels) ok = ok || l == *v;
        if (!ok)
            fail(*t->get("log_level"), "daemon.log_level",
                 "expected one of trace, debug, info, warn, error, critical, off, got '" + *v +
                     "'");
        c.log_level = *v;
    }
}

void Loader::load_ingest(const toml::table& root, Config& c) const {
    c.spool_dir = (c.state_dir / "spool").lexically_normal();
    const toml::table* t = table_at(root, "", "ingest");
    if (!t) return;
    check_keys(*t, "ingest",
               {"spool_dir", "policy", "future_tolerance_s", "bind", "endpoint_policy"}, false);
    if (auto p = get_path(*t, "ingest", "spool_dir")) c.spool_dir = *p;
    for (auto [key, policy] : {std::pair{"policy", &c.policy},
                               std::pair{"endpoint_policy", &c.endpoint_policy}}) {
        auto p = get_string(*t, "ingest", key, false);
        if (!p) continue;
        auto parsed = parse_reject_policy(*p);
        if (!parsed)
            fail(*t->get(key), "ingest." + std::string(key),
                 "expected \"partial\" or \"reject_file\", got '" + *p + "'");
        *policy = *parsed;
    }
    if (auto v = get_bounded(*t, "ingest", "future_tolerance_s", 0, max_interval_s, "366 days"))
        c.future_tolerance = std::chrono::seconds(*v);
    if (auto bind = get_string(*t, "ingest", "bind", true)) c.ingest_bind = *bind;
}

// [ingest] bind must not take an endpoint [[publish]] or [query] binds (checked once those
// are loaded).
void Loader::check_ingest_bind(const toml::table& root, const Config& c) const {
    if (c.ingest_bind.empty()) return;
    check_bind_free(*root.get("ingest")->as_table()->get("bind"), "ingest.bind", c.ingest_bind, c);
}

// Fails at `at` when `bind` is an endpoint the sockets configured so far in `c` already bind.
void Loader::check_bind_free(const toml::node& at, const std::string& key, const std::string& bind,
                             const Config& c) const {
    auto taken = [&](const std::string& by) {
        fail(at, key, "endpoint '" + bind + "' is already bound by " + by);
    };
    for (const auto& p : c.publish) {
        if (p.bind == bind) taken("[[publish]] '" + p.name + "'");
        if (p.query_bind == bind) taken("the query endpoint of [[publish]] '" + p.name + "'");
    }
    if (c.query_bind == bind) taken("[query]");
}

void Loader::load_publish(const toml::table& root, Config& c) const {
    const toml::node* n = root.get("publish");
    if (!n) return;
    auto* arr = n->as_array();
    if (!arr || !arr->is_array_of_tables())
        fail_type(*n, "publish", "an array of tables [[publish]]");
    std::size_t index = 0;
    for (auto& el : *arr) {
        ++index;
        const std::string prefix = "publish[" + std::to_string(index) + "]";
        const toml::table& t = *el.as_table();
        check_keys(t, prefix, {"name", "bind", "scope", "query", "curve_secret_key_file", "authorized_keys_dir"},
                   false);
        PublishEndpoint e;
        if (auto name = get_string(t, prefix, "name", true)) {
            if (!is_name(*name, true))
                fail(*t.get("name"), prefix + ".name",
                     "expected [A-Za-z0-9_.-]+, got '" + *name + "'");
            e.name = *name;
        } else {
            e.name = "publish" + std::to_string(index);
        }
        auto bind = get_string(t, prefix, "bind", true);
        if (!bind) fail_missing(prefix + ".bind");
        e.bind = *bind;
        if (auto scope = get_string(t, prefix, "scope", false)) {
            if (!scope->empty() && !is_region_prefix(*scope))
                fail(*t.get("scope"), prefix + ".scope",
                     "expected a region prefix like \"KE/KE-03\", got '" + *scope + "'");
            e.scope = *scope;
        }
        e.curve = get_curve(t, prefix);
        for (const auto& other : c.publish)
            if (other.name == e.name)
                fail(t.get("name") ? t.get("name")->source() : t.source(), prefix + ".name",
                     "duplicate endpoint name '" + e.name + "'");
        check_bind_free(*t.get("bind"), prefix + ".bind", e.bind, c);
        if (auto query = get_string(t, prefix, "query", true)) {
            if (*query == e.bind)
                fail(*t.get("query"), prefix + ".query",
                     "endpoint '" + *query + "' is this endpoint's own bind; the query endpoint needs another");
            check_bind_free(*t.get("query"), prefix + ".query", *query, c);
            e.query_bind = *query;
        }
        c.publish.push_back(std::move(e));
    }
}

void Loader::load_query(const toml::table& root, Config& c) const {
    if (!c.publish.empty()) c.query_endpoint = c.publish.front().name;
    const toml::table* t = table_at(root, "", "query");
    if (!t) return;
    check_keys(*t, "query", {"bind", "endpoint", "curve_secret_key_file", "authorized_keys_dir"}, false);
    c.query_curve = get_curve(*t, "query");
    // The query endpoint's ZAP domain is "query"; a CURVE [[publish]] endpoint of that name
    // would share it, so the two must admit the same keys.
    for (const auto& p : c.publish)
        if (c.query_curve.enabled() && p.curve.enabled() && p.name == "query" &&
            p.curve.authorized_keys_dir != c.query_curve.authorized_keys_dir)
            fail(*t->get("authorized_keys_dir"), "query.authorized_keys_dir",
                 "the ZAP domain \"query\" is also the [[publish]] endpoint 'query', whose "
                 "authorized_keys_dir differs; rename that endpoint");
    if (auto bind = get_string(*t, "query", "bind", true)) {
        check_bind_free(*t->get("bind"), "query.bind", *bind, c);
        c.query_bind = *bind;
    }
    if (auto endpoint = get_string(*t, "query", "endpoint", true)) {
        bool found = false;
        std::string names;
        for (const auto& p : c.publish) {
            found = found || p.name == *endpoint;
            names += (names.empty() ? "" : ", ") + p.name;
        }
        if (!found)
            fail(*t->get("endpoint"), "query.endpoint",
                 "names no [[publish]] endpoint: '" + *endpoint + "' (defined: " +
                     (names.empty() ? std::string("none") : names) + ")");
        c.query_endpoint = *endpoint;
    } else if (!c.query_bind.empty() && c.publish.empty()) {
        fail(*t->get("bind"), "query.bind", "needs a [[publish]] endpoint whose outbox it serves");
    }
}

// Returns: `x` as a person would write it ("45", "12.5").
std::string plain_number(double x) {
    std::ostringstream out;
    out << x;
    return out.str();
}

void Loader::load_scoring(const toml::table& root, Config& c) const {
    const toml::table* t = table_at(root, "", "scoring");
    if (!t) return;
    check_keys(*t, "scoring",
               {"raise_after", "clear_after", "repeat_every_s", "flapping", "weights", "levels"},
               false);
    if (auto v = get_int(*t, "scoring", "raise_after", 1, 100)) c.raise_after = int(*v);
    if (auto v = get_int(*t, "scoring", "clear_after", 1, 100)) c.clear_after = int(*v);
    if (auto v = get_int(*t, "scoring", "repeat_every_s", 0, 366LL * 86400))
        c.repeat_every = std::chrono::seconds(*v);
    if (const toml::table* f = table_at(*t, "scoring", "flapping")) {
        check_keys(*f, "scoring.flapping", {"window", "high", "low"}, false);
        if (auto v = get_int(*f, "scoring.flapping", "window", 3, 32)) c.flap_window = int(*v);
        auto percent = [](double x) { return x >= 0 && x <= 100; };
        if (auto v = get_number(*f, "scoring.flapping", "high", "a percentage in 0..100", percent))
            c.flap_high = *v;
        if (auto v = get_number(*f, "scoring.flapping", "low", "a percentage in 0..100", percent))
            c.flap_low = *v;
        if (c.flap_high > 0 && c.flap_low >= c.flap_high) {
            const toml::node* at = f->get("low") ? f->get("low") : f->get("high");
            fail(at ? at->source() : f->source(), f->get("low") ? "scoring.flapping.low" : "scoring.flapping.high",
                 "low (" + plain_number(c.flap_low) + ") must be below high (" +
                     plain_number(c.flap_high) + ")");
        }
    }

    if (const toml::table* w = table_at(*t, "scoring", "weights")) {
        for (auto&& [k, v] : *w) {
            (void)v;
            auto weight = get_number(*w, "scoring.weights", k.str(), "a number > 0",
                                     [](double x) { return x > 0; });
            c.weights[std::string(k.str())] = *weight;
        }
    }

    const toml::table* levels = table_at(*t, "scoring", "levels");
    if (!levels) return;
    static constexpr std::string_view names[] = {"watch", "warning", "critical"};
    check_keys(*levels, "scoring.levels", {"watch", "warning", "critical"}, false);
    std::array<std::optional<toml::source_region>, 3> raise_at, clear_at;
    for (std::size_t i = 0; i < 3; ++i) {
        const std::string prefix = "scoring.levels." + std::string(names[i]);
        const toml::table* l = table_at(*levels, "scoring.levels", names[i]);
        if (!l) continue;
        check_keys(*l, prefix, {"raise", "clear"}, false);
        auto in_0_100 = [](double x) { return x >= 0 && x <= 100; };
        if (auto v = get_number(*l, prefix, "raise", "a number in 0..100", in_0_100)) {
            c.levels[i].raise = *v;
            raise_at[i] = l->get("raise")->source();
        }
        if (auto v = get_number(*l, prefix, "clear", "a number in 0..100", in_0_100)) {
            c.levels[i].clear = *v;
            clear_at[i] = l->get("clear")->source();
        }
    }
    auto num = plain_number;
    for (std::size_t i = 0; i < 3; ++i) {
        const std::string prefix = "scoring.levels." + std::string(names[i]);
        const auto& l = c.levels[i];
        if (l.clear >= l.raise) {
            bool at_clear = clear_at[i].has_value();
            fail(at_clear ? *clear_at[i] : raise_at[i].value_or(levels->source()),
                 prefix + (at_clear ? ".clear" : ".raise"),
                 "clear (" + num(l.clear) + ") must be below raise (" + num(l.raise) + ")");
        }
        if (i > 0 && l.raise <= c.levels[i - 1].raise) {
            bool at_this = raise_at[i].has_value();
            const std::string lower = "scoring.levels." + std::string(names[i - 1]) + ".raise";
            fail(at_this ? *raise_at[i] : raise_at[i - 1].value_or(levels->source()),
                 at_this ? prefix + ".raise" : lower,
                 "raise thresholds must increase watch < warning < critical, got " + lower + " = " +
                     num(c.levels[i - 1].raise) + " and " + prefix + ".raise = " + num(l.raise));
        }
    }
}

void Loader::load_privacy(const toml::table& root, Config& c) const {
    const toml::table* t = table_at(root, "", "privacy");
    if (!t) return;
    check_keys(*t, "privacy", {"min_cell"}, false);
    if (auto v = get_int(*t, "privacy", "min_cell", 1, 1000)) c.min_cell = int(*v);
}

void Loader::load_metrics(const toml::table& root, Config& c) const {
    const toml::table* t = table_at(root, "", "metrics");
    if (!t) return;
    check_keys(*t, "metrics", {"bind"}, false);
    if (auto bind = get_string(*t, "metrics", "bind", true)) {
        try {
            (void)parse_listen_address(*bind);
        } catch (const std::invalid_argument& e) {
            fail(*t->get("bind"), "metrics.bind", e.what());
        }
        c.metrics_bind = *bind;
    }
}

void Loader::load_retention(const toml::table& root, Config& c) const {
    const toml::table* t = table_at(root, "", "retention");
    if (!t) return;
    check_keys(*t, "retention", {"observations_days", "alerts_days"}, false);
    if (auto v = get_bounded(*t, "retention", "observations_days", 1, max_retention_days, "100 years"))
        c.keep_observations = std::chrono::days(*v);
    if (auto v = get_bounded(*t, "retention", "alerts_days", 1, max_retention_days, "100 years"))
        c.keep_alerts = std::chrono::days(*v);
}

sdk::ParamValue Loader::plugin_value(const toml::node& n, const std::string& key) const {
    static constexpr std::string_view expected =
        "a boolean, integer, float, string, array of strings or table of numbers";
    switch (n.type()) {
        case toml::node_type::boolean: return n.as_boolean()->get();
        case toml::node_type::integer: return n.as_integer()->get();
        case toml::node_type::floating_point: return n.as_floating_point()->get();
        case toml::node_type::string: return n.as_string()->get();
        case toml::node_type::array: {
            std::vector<std::string> out;
            for (auto& el : *n.as_array()) {
                auto* s = el.as_string();
                if (!s)
                fail(el, key, "expected an array of strings, got an element of type " +
                                  std::string(type_name(el)));
                out.push_back(s->get());
            }
            return out;
        }
        case toml::node_type::table: {
            std::map<std::string, double> out;
            for (auto&& [k, v] : *n.as_table()) {
                if (auto* i = v.as_integer())
                    out[std::string(k.str())] = static_cast<double>(i->get());
                else if (auto* f = v.as_floating_point())
                    out[std::string(k.str())] = f->get();
                else
                    fail_type(v, key + "." + std::string(k.str()), "a number");
            }
            return out;
        }
        default: fail_type(n, key, expected);
    }
}

void Loader::load_plugins(const toml::table& root, Config& c) const {
    const toml::table* t = table_at(root, "", "plugins");
    if (!t) return;
    for (auto&& [name, section] : *t) {
        const std::string prefix = "plugins." + std::string(name.str());
        if (!section.is_table()) fail_type(section, prefix, "a table [" + prefix + "]");
        if (!is_name(name.str(), false))
            fail(name.source().begin.line ? name.source() : section.source(), prefix,
                 "plugin names are [a-z0-9_]+");
        auto& params = c.plugin_params[std::string(name.str())];
        for (auto&& [k, v] : *section.as_table()) {
            const std::string key = std::string(name.str()) + "." + std::string(k.str());
            params[std::string(k.str())] = plugin_value(v, "plugins." + key);
            c.plugin_param_where[key] = where(k.source().begin.line ? k.source() : v.source());
        }
    }
}

void Loader::load_actions(const toml::table& root, Config& c) const {
    const toml::table* t = table_at(root, "", "actions");
    if (!t) return;
    for (auto&& [k, v] : *t) {
        const std::string key = "actions." + std::string(k.str());
        if (v.is_table()) {
            // [actions.<indicator>]: playbooks for alerts that indicator drives.
            const toml::table& per = *v.as_table();
            check_keys(per, key, {"watch", "warning", "critical"}, false);
            auto& into = c.indicator_actions[std::string(k.str())];
            for (auto&& [lk, lv] : per)
                into[*parse_level(lk.str())] = get_string_list(lv, key + "." + std::string(lk.str()));
            continue;
        }
        if (k.str() == "resolved") {
            c.resolved_actions = get_string_list(v, key);
        } else if (k.str() == "data_gap") {
            c.data_gap_actions = get_string_list(v, key);
        } else if (auto level = parse_level(k.str()); level && *level != Level::none) {
            c.actions[*level] = get_string_list(v, key);
        } else {
            fail(k.source().begin.line ? k.source() : v.source(), key,
                 "unknown key (expected one of: watch, warning, critical, resolved, data_gap, "
                 "or a table [actions.<indicator>])");
        }
    }
}

}  // namespace

std::string_view to_string(RejectPolicy policy) {
    return policy == RejectPolicy::partial ? "partial" : "reject_file";
}

std::optional<RejectPolicy> parse_reject_policy(std::string_view name) {
    if (name == "partial") return RejectPolicy::partial;
    if (name == "reject_file") return RejectPolicy::reject_file;
    return std::nullopt;
}

Config load_config(const std::filesystem::path& file, const LoadOptions& options) {
    const std::string label = file.string();
    std::error_code ec;
    auto absolute = std::filesystem::absolute(file, ec).lexically_normal();
    if (ec) throw ConfigError(label + ": cannot resolve the path: " + ec.message());
    {
        std::ifstream probe(file, std::ios::binary);
        if (!probe) throw ConfigError(label + ": cannot open the file for reading");
    }
    toml::table root;
    try {
        root = toml::parse_file(file.string());
    } catch (const toml::parse_error& e) {
        const auto& b = e.source().begin;
        throw ConfigError(label + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) +
                          ": " + std::string(e.description()));
    }
    Loader loader(label, absolute.parent_path(), options);
    return loader.load(root, absolute);
}

}  // namespace ews
