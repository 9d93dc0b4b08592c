#include "report_commands.hpp"

#include "pipeline.hpp"
#include "report.hpp"
#include "store.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <unistd.h>

namespace ews::tools {
namespace {

namespace fs = std::filesystem;

// Bad input: the command prints the message and exits 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::optional<TimePoint> option_at(const std::string& text) {
    if (text.empty()) return std::nullopt;
    auto t = parse_time(text);
    if (!t) throw UsageError("--at '" + text + "': expected an RFC 3339 date or UTC date-time");
    return t;
}

void check_format(const std::string& format) {
    if (format != "table" && format != "csv" && format != "json")
        throw UsageError("--format '" + format + "': expected table, csv or json");
}

// Writes `content` to `path` through a hidden temporary file beside it, synced, then
// renamed over it: a reader never sees half a file, and a failure leaves `path` as it was.
void write_file(const fs::path& path, const std::string& content) {
    const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    const fs::path tmp = dir / ("." + path.filename().string() + ".tmp" + std::to_string(::getpid()));
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw std::runtime_error(path.string() + ": cannot write: " + std::strerror(errno));
        f << content;
        f.flush();
        if (!f) {
            const int e = errno;
            std::error_code ignored;
            fs::remove(tmp, ignored);
            throw std::runtime_error(path.string() + ": cannot write: " + std::strerror(e));
        }
    }
    if (FILE* f = std::fopen(tmp.c_str(), "rb")) {
        ::fsync(fileno(f));
        std::fclose(f);
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
        std::error_code ignored;
        fs::remove(tmp, ignored);
        throw std::runtime_error(path.string() + ": cannot write: " + ec.message());
    }
}

void emit(const ReportCommandOptions& o, const std::string& content, std::ostream& out) {
    if (o.output.empty() || o.output == "-")
        out << content;
    else
        write_file(o.output, content);
}

std::string fixed1(double x) {
    if (!std::isfinite(x)) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", x);
    return buf;
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width;
    for (const auto& row : rows) {
        width.resize(std::max(width.size(), row.size()), 0);
        for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            line += row[c];
            if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

std::string csv_field(std::string s) {
    if (!s.empty() && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@'))
        s.insert(s.begin(), '\'');
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::string time_text(const std::optional<TimePoint>& t) { return t ? format_time(*t) : ""; }

// Runs `body`, mapping failures to exit codes and messages on `err`.
template <typename F>
int guarded(const char* command, std::ostream& err, F&& body) {
    const std::string me = std::string("ewsctl ") + command + ": ";
    try {
        return body();
    } catch (const UsageError& e) {
        err << me << e.what() << "\n";
        return 2;
    } catch (const std::invalid_argument& e) {
        err << me << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        err << me << e.what() << "\n";
        return 1;
    }
}

report::Options report_options(const ReportCommandOptions& o) {
    report::Options r;
    r.region = o.region;
    r.at = option_at(o.at);
    r.periods = o.periods;
    r.step_days = o.step_days;
    r.compare_days = o.compare_days;
    return r;
}

}  // namespace

int cmd_report(const Config& config, const ReportCommandOptions& o, std::ostream& out,
               std::ostream& err) {
    return guarded("report", err, [&] {
        if (o.html.empty()) throw UsageError("--html OUT: give the file to write");
        const report::Report r = report::build(config, report_options(o));
        write_file(o.html, report::render_html(r));
        std::size_t attention = 0;
        for (const auto& row : r.rows) attention += row.level != Level::none ? 1 : 0;
        out << o.html << ": " << (r.scope.empty() ? "all regions" : "region " + r.scope) << ", "
            << r.localities << " localities, " << attention << " at watch or above ("
            << r.total_now[3] << " critical, " << r.total_now[2] << " warning, "
            << r.total_now[1] << " watch) as of " << format_time(r.at) << "\n";
        if (r.failed_assessments > 0)
            err << "ewsctl report: " << r.failed_assessments
                << " assessments failed (plugin errors or over the time budget)\n";
        return 0;
    });
}

int cmd_scores(const Config& config, const ReportCommandOptions& o, std::ostream& out,
               std::ostream& err) {
    return guarded("scores", err, [&] {
        check_format(o.format);
        report::Options options = report_options(o);
        options.trends = false;
        const report::Report r = report::build(config, options);
        if (o.format == "csv") {
            emit(o, report::scores_csv(r), out);
        } else if (o.format == "json") {
            emit(o, report::scores_json(r), out);
        } else {
            std::vector<std::vector<std::string>> rows{
                {"level", "score", "locality", "name", "region", "top indicator", "newest data"}};
            for (const auto& row : r.rows) {
                const std::string top =
                    row.dominant >= 0 && std::size_t(row.dominant) < row.indicators.size()
                        ? row.indicators[std::size_t(row.dominant)].indicator
                        : "-";
                rows.push_back({std::string(to_string(row.level)), fixed1(row.score), row.id,
                                row.name, row.region, top,
                                row.newest ? format_time(*row.newest).substr(0, 10) : "-"});
            }
            emit(o, table(rows) + std::to_string(r.rows.size()) + " localities as of " +
                        format_time(r.at) + "\n",
                 out);
        }
        return 0;
    });
}

int cmd_alerts(const Config& config, const ReportCommandOptions& o, std::ostream& out,
               std::ostream& err) {
    return guarded("alerts", err, [&] {
        check_format(o.format);
        if (!o.region.empty() && !valid_region(o.region))
            throw UsageError("--region '" + o.region +
                             "': not a region path (codes of [A-Za-z0-9_.-] separated by '/')");
        const fs::path db_file = config.state_dir / "ewsd.db";
        std::error_code ec;
        if (!fs::is_regular_file(db_file, ec))
            throw std::runtime_error(db_file.string() + ": no database");
        Store store(db_file);
        std::map<std::string, Locality> locs;
        for (auto& l : store.localities()) locs[l.id] = l;
        const TimePoint now = wall_now();
        const auto silences = store.silences(now, false);

        struct Row {
            const AlertState* state;
            const Locality* locality;
            const Silence* silence;
        };
        const auto states = store.alert_states();
        std::vector<Row> rows;
        for (const auto& s : states) {
            if (s.level == Level::none) continue;
            const auto l = locs.find(s.locality);
            if (l == locs.end() || !in_scope(l->second.region, o.region)) continue;
            const Silence* silence = nullptr;
            for (const auto& si : silences)
                if (si.active(now) && (si.locality.empty() ? in_scope(l->second.region, si.region)
                                                           : si.locality == s.locality)) {
                    silence = &si;
                    break;
                }
            rows.push_back({&s, &l->second, silence});
        }
        std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
            if (a.state->level != b.state->level) return a.state->level > b.state->level;
            if (a.state->score != b.state->score) return a.state->score > b.state->score;
            return a.state->locality < b.state->locality;
        });

        if (o.format == "json") {
            nlohmann::ordered_json list = nlohmann::ordered_json::array();
            for (const auto& r : rows) {
                const AlertState& s = *r.state;
                const bool acked = !s.acked_id.empty() && s.acked_id == s.alert_id;
                list.push_back({{"id", s.alert_id},
                                {"locality", s.locality},
                                {"name", r.locality->name},
                                {"region", r.locality->region},
                                {"level", std::string(to_string(s.level))},
                                {"notified_level", std::string(to_string(s.notified_level))},
                                {"score", std::isfinite(s.score) ? nlohmann::ordered_json(std::round(s.score * 10) / 10)
                                                                 : nlohmann::ordered_json(nullptr)},
                                {"opened_at", s.opened_at ? nlohmann::ordered_json(format_time(*s.opened_at))
                                                          : nlohmann::ordered_json(nullptr)},
                                {"changed_at", s.changed_at ? nlohmann::ordered_json(format_time(*s.changed_at))
                                                            : nlohmann::ordered_json(nullptr)},
                                {"evaluated_at", s.evaluated_at ? nlohmann::ordered_json(format_time(*s.evaluated_at))
                                                                : nlohmann::ordered_json(nullptr)},
                                {"acknowledged", acked ? nlohmann::ordered_json{{"by", s.acked_by},
                                                                                {"at", time_text(s.acked_at)}}
                                                       : nlohmann::ordered_json(nullptr)},
                                {"flapping", s.flapping},
                                {"silence", r.silence ? nlohmann::ordered_json(r.silence->id)
                                                      : nlohmann::ordered_json(nullptr)}});
            }
            emit(o, list.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n", out);
        } else if (o.format == "csv") {
            std::string text =
                "id,locality,name,region,level,notified_level,score,opened_at,changed_at,"
                "evaluated_at,acknowledged_by,acknowledged_at,flapping,silence\n";
            for (const auto& r : rows) {
                const AlertState& s = *r.state;
                const bool acked = !s.acked_id.empty() && s.acked_id == s.alert_id;
                text += csv_field(s.alert_id) + "," + csv_field(s.locality) + "," +
                        csv_field(r.locality->name) + "," + csv_field(r.locality->region) + "," +
                        std::string(to_string(s.level)) + "," +
                        std::string(to_string(s.notified_level)) + "," +
                        (std::isfinite(s.score) ? fixed1(s.score) : "") + "," +
                        time_text(s.opened_at) + "," + time_text(s.changed_at) + "," +
                        time_text(s.evaluated_at) + "," + (acked ? csv_field(s.acked_by) : "") + "," +
                        (acked ? time_text(s.acked_at) : "") + "," + (s.flapping ? "1" : "0") + "," +
                        (r.silence ? std::to_string(r.silence->id) : "") + "\n";
            }
            emit(o, text, out);
        } else {
            std::string text;
            for (const auto& r : rows) {
                const AlertState& s = *r.state;
                text += std::string(to_string(s.level)) + "\t" + s.alert_id + "\t" +
                        r.locality->region + "\t" + r.locality->name + "\tscore " + fixed1(s.score) +
                        "\topened " + time_text(s.opened_at) +
                        (s.acked_by.empty() ? "\tnot acknowledged" : "\tacknowledged by " + s.acked_by) +
                        (s.flapping ? "\tflapping" : "\tnot flapping") +
                        (r.silence ? "\tsilenced (silence " + std::to_string(r.silence->id) + ")"
                                   : "\tnot silenced") +
                        "\n";
            }
            text += std::to_string(rows.size()) + " open alerts\n";
            emit(o, text, out);
        }
        return 0;
    });
}

}  // namespace ews::tools
