// db_commands.cpp: see db_commands.hpp.
#include "db_commands.hpp"

#include "store.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

namespace ews::tools {

namespace {

std::filesystem::path database(const Config& config) { return config.state_dir / "ewsd.db"; }

// Returns: "12.3 MiB", "512 B": for people; the exact byte count is printed beside it.
std::string human_bytes(std::uint64_t n) {
    static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = double(n);
    std::size_t u = 0;
    while (v >= 1024 && u + 1 < std::size(units)) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

// Prints `rows` as two aligned columns under `head`.
template <class Rows>
void print_columns(std::ostream& os, const std::string& head_left, const std::string& head_right,
                   const Rows& rows) {
    std::size_t width = head_left.size();
    for (const auto& [name, value] : rows) width = std::max(width, std::string(name).size());
    auto line = [&](const std::string& left, const std::string& right) {
        os << "  " << left << std::string(width - left.size() + 2, ' ') << right << "\n";
    };
    line(head_left, head_right);
    for (const auto& [name, value] : rows) line(std::string(name), std::to_string(value));
}

std::vector<std::pair<std::string, std::int64_t>> table_rows(const std::vector<TableCount>& tables) {
    std::vector<std::pair<std::string, std::int64_t>> out;
    for (const auto& t : tables) out.emplace_back(t.table, t.rows);
    return out;
}

}  // namespace

int cmd_backup(const Config& config, const std::string& out, std::ostream& os, std::ostream& err) {
    BackupResult result;
    try {
        result = Store::backup_database(database(config), out);
    } catch (const StoreError& e) {
        err << "ewsctl: backup: " << e.what() << "\n";
        return 1;
    }
    os << "wrote " << result.file.string() << ": " << human_bytes(result.bytes) << " ("
       << result.bytes << " bytes), schema version " << result.schema_version
       << ", integrity_check ok\n";
    print_columns(os, "table", "rows", table_rows(result.tables));
    return 0;
}

int cmd_db_stats(const Config& config, bool json, std::ostream& os, std::ostream& err) {
    const auto file = database(config);
    StoreStats s;
    try {
        s = Store::stats_of_file(file);
    } catch (const StoreError& e) {
        err << "ewsctl: db stats: " << e.what() << "\n";
        return 1;
    }
    auto time_or_null = [](const std::optional<TimePoint>& t) {
        return t ? nlohmann::json(format_time(*t)) : nlohmann::json(nullptr);
    };
    if (json) {
        nlohmann::json j;
        j["database"] = file.string();
        j["schema_version"] = s.schema_version;
        j["file_bytes"] = s.file_bytes;
        j["free_bytes"] = s.free_bytes;
        j["wal_bytes"] = s.wal_bytes;
        j["tables"] = nlohmann::json::object();
        for (const auto& t : s.tables) j["tables"][t.table] = t.rows;
        j["observations"] = {{"rows", s.observations},
                             {"oldest", time_or_null(s.oldest_observation)},
                             {"newest", time_or_null(s.newest_observation)}};
        j["kinds"] = nlohmann::json::array();
        for (const auto& [kind, n] : s.kinds) j["kinds"].push_back({{"kind", kind}, {"rows", n}});
        j["last_seq"] = nlohmann::json::object();
        for (const auto& [endpoint, seq] : s.last_seq) j["last_seq"][endpoint] = seq;
        os << j.dump(2) << "\n";
        return 0;
    }
    os << "database      " << file.string() << "\n";
    os << "schema        version " << s.schema_version << "\n";
    os << "size          " << human_bytes(s.file_bytes) << " (" << s.file_bytes << " bytes; "
       << human_bytes(s.free_bytes) << " in free pages)\n";
    os << "wal           " << human_bytes(s.wal_bytes) << " (" << s.wal_bytes << " bytes)\n";
    os << "observations  " << s.observations;
    if (s.oldest_observation && s.newest_observation)
        os << ", " << format_time(*s.oldest_observation) << " to " << format_time(*s.newest_observation);
    os << "\n\n";
    print_columns(os, "table", "rows", table_rows(s.tables));
    os << "\n";
    print_columns(os, "kind (top 20)", "rows", s.kinds);
    os << "\n";
    print_columns(os, "endpoint", "last seq", s.last_seq);
    return 0;
}

int cmd_db_check(const Config& config, std::ostream& os, std::ostream& err) {
    const auto file = database(config);
    std::vector<std::string> problems;
    try {
        problems = Store::integrity_check_file(file);
    } catch (const StoreError& e) {
        err << "ewsctl: db check: " << e.what() << "\n";
        return 1;
    }
    if (problems.empty()) {
        os << file.string() << ": ok (integrity_check)\n";
        return 0;
    }
    for (const auto& p : problems) os << file.string() << ": " << p << "\n";
    const auto f = file.string();
    os << file.string() << ": the database is damaged (" << problems.size()
       << " problems). To restore it: stop ewsd; move " << f << " (and " << f << "-wal, " << f
       << "-shm if present) aside; copy the latest backup written by `ewsctl backup` to " << f
       << "; start ewsd again. Observations ingested after that backup must be ingested again.\n";
    return 1;
}

}  // namespace ews::tools
