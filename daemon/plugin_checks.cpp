#include "plugin_checks.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <utility>

namespace ews {
namespace {

namespace fs = std::filesystem;

std::string octal_mode(mode_t mode) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

std::string user_text(uid_t uid) {
    std::string text = "uid " + std::to_string(uid);
    passwd pw{};
    passwd* found = nullptr;
    char buf[1024];
    if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found)
        text += " (" + std::string(found->pw_name) + ")";
    return text;
}

std::string group_text(gid_t gid) {
    group gr{};
    group* found = nullptr;
    char buf[1024];
    if (::getgrgid_r(gid, &gr, buf, sizeof buf, &found) == 0 && found)
        return "group " + std::string(found->gr_name);
    return "group gid " + std::to_string(gid);
}

// Returns: why whoever can change `path` (a plugin file, or a directory that holds one)
// could run code in ewsd, starting with the condition ("world-writable (mode 0646): ..."),
// or nullopt when only root or this process's effective user can.
std::optional<std::string> writers_problem(const struct stat& st, const fs::path& path,
                                           bool is_dir) {
    const std::string mode = octal_mode(st.st_mode);
    const bool group_w = (st.st_mode & S_IWGRP) != 0;
    const bool world_w = (st.st_mode & S_IWOTH) != 0;
    const std::string effect = is_dir ? "replace the plugin and run code in ewsd"
                                      : "run code in ewsd";
    const std::string where = is_dir ? "there" : "it";
    if (group_w && world_w)
        return "group- and world-writable (mode " + mode + "): anyone who can write " + where +
               " can " + effect + "; chmod go-w " + path.string();
    if (world_w)
        return "world-writable (mode " + mode + "): any user can " + effect + "; chmod o-w " +
               path.string();
    if (group_w)
        return "group-writable (mode " + mode + "): every member of " + group_text(st.st_gid) +
               " can " + effect + "; chmod g-w " + path.string();
    const uid_t self = ::geteuid();
    if (st.st_uid != 0 && st.st_uid != self)
        return "owned by " + user_text(st.st_uid) +
               ", which is neither root nor the user ewsd runs as (uid " + std::to_string(self) +
               "): that user can " + effect + "; chown root " + path.string();
    return std::nullopt;
}

std::string errno_text(int err) { return std::strerror(err); }

// One path to examine and the words that introduce its problem in the reason.
struct Subject {
    fs::path path;
    std::string lead;  // "" for the plugin file itself; else e.g. "its directory D is "
    bool is_dir = false;
};

}  // namespace

std::optional<std::string> untrusted_reason(const fs::path& file) {
    std::error_code ec;
    const fs::path given = fs::absolute(file, ec);
    if (ec) return "cannot be examined: " + ec.message();

    struct stat link_st {};
    if (::lstat(given.c_str(), &link_st) != 0) return "cannot be examined: " + errno_text(errno);

    std::vector<Subject> subjects;
    if (S_ISLNK(link_st.st_mode)) {
        const fs::path target = fs::canonical(given, ec);
        if (ec)
            return "is a symlink whose target cannot be resolved (" + ec.message() +
                   "); point it at an existing file or remove it";
        const std::string via = "is a symlink to " + target.string();
        subjects.push_back({target, via + ", which is ", false});
        subjects.push_back({target.parent_path(),
                            via + ", whose directory " + target.parent_path().string() + " is ",
                            true});
        // A symlink's own mode means nothing; who owns it does (with its directory's
        // sticky bit, the owner may replace it).
        const uid_t self = ::geteuid();
        if (link_st.st_uid != 0 && link_st.st_uid != self)
            return "is a symlink owned by " + user_text(link_st.st_uid) +
                   ", which is neither root nor the user ewsd runs as (uid " +
                   std::to_string(self) +
                   "): that user can point it elsewhere and run code in ewsd; chown -h root " +
                   given.string();
    } else {
        subjects.push_back({given, "", false});
    }
    // The directory holding the name that is loaded: whoever can write it can swap the file.
    const fs::path dir = given.parent_path();
    subjects.push_back({dir, "its directory " + dir.string() + " is ", true});

    std::set<std::pair<dev_t, ino_t>> seen;
    for (const auto& s : subjects) {
        struct stat st {};
        if (::stat(s.path.c_str(), &st) != 0)
            return s.lead + "cannot be examined (" +
                   s.path.string() + ": " + errno_text(errno) + ")";
        if (!seen.insert({st.st_dev, st.st_ino}).second) continue;
        if (auto why = writers_problem(st, s.path, s.is_dir)) return s.lead + *why;
    }
    return std::nullopt;
}

namespace {

std::string_view expected_text(sdk::ParamType t) {
    switch (t) {
        case sdk::ParamType::boolean: return "a boolean";
        case sdk::ParamType::integer: return "an integer";
        case sdk::ParamType::number: return "a number";
        case sdk::ParamType::string: return "a string";
        case sdk::ParamType::string_list: return "a list of strings";
        case sdk::ParamType::number_table: return "a table of numbers";
    }
    return "a value";
}

std::string number_text(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}

// Returns: the kind of `v` and, for a scalar, the value itself: "a string ('abc')".
std::string got_text(const sdk::ParamValue& v) {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, bool>)
                return std::string("a boolean (") + (x ? "true" : "false") + ")";
            else if constexpr (std::is_same_v<T, std::int64_t>)
                return "an integer (" + std::to_string(x) + ")";
            else if constexpr (std::is_same_v<T, double>)
                return "a number (" + number_text(x) + ")";
            else if constexpr (std::is_same_v<T, std::string>)
                return "a string ('" + x + "')";
            else if constexpr (std::is_same_v<T, std::vector<std::string>>)
                return "a list of strings";
            else
                return "a table of numbers";
        },
        v);
}

bool type_matches(sdk::ParamType t, const sdk::ParamValue& v) {
    switch (t) {
        case sdk::ParamType::boolean: return std::holds_alternative<bool>(v);
        case sdk::ParamType::integer: return std::holds_alternative<std::int64_t>(v);
        case sdk::ParamType::number:
            return std::holds_alternative<double>(v) || std::holds_alternative<std::int64_t>(v);
        case sdk::ParamType::string: return std::holds_alternative<std::string>(v);
        case sdk::ParamType::string_list:
            return std::holds_alternative<std::vector<std::string>>(v);
        case sdk::ParamType::number_table:
            return std::holds_alternative<std::map<std::string, double>>(v);
    }
    return false;
}

// Returns: "must be ..." when `v` is not finite or outside the spec's [min, max].
std::optional<std::string> range_problem(const sdk::ParamSpec& s, double v) {
    if (!std::isfinite(v)) return "must be a finite number, got " + number_text(v);
    const bool low = s.min && v < *s.min;
    const bool high = s.max && v > *s.max;
    if (!low && !high) return std::nullopt;
    std::string bound;
    if (s.min && s.max)
        bound = "between " + number_text(*s.min) + " and " + number_text(*s.max);
    else if (s.min)
        bound = "at least " + number_text(*s.min);
    else
        bound = "at most " + number_text(*s.max);
    return "must be " + bound + ", got " + number_text(v);
}

}  // namespace

std::vector<std::string> validate_params(const sdk::Descriptor& d, const sdk::Params& params) {
    std::vector<std::string> problems;
    for (const auto& [key, value] : params) {
        const std::string lead = "parameter '" + key + "' ";
        const sdk::ParamSpec* spec = nullptr;
        for (const auto& s : d.params)
            if (s.name == key) spec = &s;
        if (!spec) {
            std::string known;
            for (const auto& s : d.params) known += (known.empty() ? "" : ", ") + s.name;
            problems.push_back(lead + "is unknown to " + d.name +
                               (known.empty() ? " (it takes no parameters)"
                                              : " (known: " + known + ")"));
            continue;
        }
        if (!type_matches(spec->type, value)) {
            problems.push_back(lead + "expects " + std::string(expected_text(spec->type)) +
                               ", got " + got_text(value));
            continue;
        }
        if (auto* i = std::get_if<std::int64_t>(&value)) {
            if (auto why = range_problem(*spec, static_cast<double>(*i)))
                problems.push_back(lead + *why);
        } else if (auto* x = std::get_if<double>(&value)) {
            if (auto why = range_problem(*spec, *x)) problems.push_back(lead + *why);
        } else if (auto* table = std::get_if<std::map<std::string, double>>(&value)) {
            for (const auto& [name, v] : *table)
                if (auto why = range_problem(*spec, v))
                    problems.push_back(lead + "entry '" + name + "' " + *why);
        }
    }
    return problems;
}

std::string locate(const Config& config, const std::string& plugin, const std::string& message) {
    static constexpr std::string_view prefix = "parameter '";
    if (message.starts_with(prefix)) {
        const auto close = message.find('\'', prefix.size());
        if (close != std::string::npos) {
            const std::string key = message.substr(prefix.size(), close - prefix.size());
            if (auto it = config.plugin_param_where.find(plugin + "." + key);
                it != config.plugin_param_where.end()) {
                auto rest = message.find_first_not_of(": ", close + 1);
                return it->second + ": plugins." + plugin + "." + key + ": " +
                       (rest == std::string::npos ? std::string("is refused")
                                                  : message.substr(rest));
            }
        }
    }
    return config.file.string() + ": plugins." + plugin + ": " + message;
}

std::string refusal_text(const Config& config, const RefusedPlugin& refused) {
    if (!refused.name.empty() && refused.reason.starts_with("parameter '"))
        return locate(config, refused.name, refused.reason) + " (plugin " + refused.file.string() + ")";
    return refused.file.string() + ": plugin refused: " + refused.reason;
}

}  // namespace ews
