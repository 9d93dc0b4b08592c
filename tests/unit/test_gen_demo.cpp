#include "gen_demo.hpp"

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace ews;

namespace {

using ews::testing::TempDir;

using Table = std::vector<std::vector<std::string>>;

std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> split(const std::string& line, char sep) {
    std::vector<std::string> out;
    std::string field;
    std::istringstream s(line);
    while (std::getline(s, field, sep)) out.push_back(field);
    if (!line.empty() && line.back() == sep) out.emplace_back();
    return out;
}

// Returns: the rows of a CSV file without quoting, checking its header.
Table read_csv(const fs::path& path, const std::string& header) {
    std::istringstream in(slurp(path));
    std::string line;
    REQUIRE(std::getline(in, line));
    REQUIRE(line == header);
    Table rows;
    while (std::getline(in, line)) rows.push_back(split(line, ','));
    return rows;
}

// The id alphabet of DESIGN.md: [A-Za-z0-9_.-]+
bool valid_id(const std::string& id) {
    return !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
    });
}

const std::string observation_header = "locality,time,kind,value,weight,source";

const TimePoint end_time = *parse_time("2026-03-15");
constexpr std::chrono::seconds day = std::chrono::days{1};

TimePoint date(const std::string& text) {
    auto t = parse_time(text);
    REQUIRE(t);
    REQUIRE(text.size() == 10);  // ISO date, no time of day
    return *t;
}

demo::Options options_for(const fs::path& dir, std::uint64_t seed = 1) {
    demo::Options o;
    o.dir = dir;
    o.localities = 300;
    o.years = 1;
    o.seed = seed;
    o.end = end_time;
    o.feed_weeks = 8;
    return o;
}

std::vector<fs::path> feed_files(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir / "feed")) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

std::map<std::string, std::string> trajectories(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (const auto& row : read_csv(dir / "scenario.csv", "locality,trajectory")) {
        REQUIRE(row.size() == 2);
        out[row[0]] = row[1];
    }
    return out;
}

}  // namespace

TEST_CASE("the same seed gives byte-identical files, another seed other files", "[gen_demo]") {
    TempDir a, b, c;
    demo::generate(options_for(a.path(), 7));
    demo::generate(options_for(b.path(), 7));
    demo::generate(options_for(c.path(), 8));
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(a.path()))
        if (e.is_regular_file()) files.push_back(fs::relative(e.path(), a.path()));
    REQUIRE(files.size() == 4 + 8);
    for (const auto& f : files) {
        INFO(f);
        CHECK(slurp(a.path() / f) == slurp(b.path() / f));
    }
    CHECK(slurp(a.path() / "history.csv") != slurp(c.path() / "history.csv"));
    CHECK(slurp(a.path() / "localities.csv") != slurp(c.path() / "localities.csv"));
}

TEST_CASE("localities form a consistent fictional country with symmetric neighbours", "[gen_demo]") {
    for (int count : {300, 7, 1000}) {
        INFO("localities " << count);
        TempDir dir;
        auto options = options_for(dir.path());
        options.localities = count;
        demo::Summary summary = demo::generate(options);
        CHECK(summary.localities == count);
        Table rows = read_csv(dir.path() / "localities.csv", "id,name,region,population,neighbours");
        REQUIRE(int(rows.size()) == count);

        std::map<std::string, std::set<std::string>> neighbours;
        std::set<std::string> names;
        std::string previous_id;
        for (const auto& row : rows) {
            REQUIRE(row.size() == 5);
            const std::string& id = row[0];
            INFO(id);
            CHECK(valid_id(id));
            CHECK(id > previous_id);  // sorted, hence unique
            previous_id = id;
            CHECK(names.insert(row[1]).second);
            CHECK(row[1].find("(demo)") != std::string::npos);
            // Region path DM/DM-<r>/DM-<r><d>: the district lies in its region, the id in
            // its district.
            const std::string& region = row[2];
            REQUIRE(region.size() == 13);
            char r = region[6];
            CHECK(region == std::string("DM/DM-") + r + "/DM-" + r + region[12]);
            CHECK((r >= '1' && r <= '4'));
            CHECK((region[12] >= '1' && region[12] <= '3'));
            CHECK(id.rfind(region.substr(8) + "-", 0) == 0);
            double population = std::stod(row[3]);
            CHECK(population >= 300);
            CHECK(population <= 15000);
            std::set<std::string> own;
            for (const auto& n : split(row[4], ';')) own.insert(n);
            CHECK(own.count(id) == 0);
            if (count >= 36) {
                CHECK(own.size() >= 2);
                CHECK(own.size() <= 4);
            }
            neighbours[id] = own;
        }
        for (const auto& [id, own] : neighbours)
            for (const auto& n : own) {
                INFO(id << " lists " << n);
                REQUIRE(neighbours.count(n) == 1);
                CHECK(neighbours[n].count(id) == 1);
            }
    }
}

TEST_CASE("the answer key marks the rising share, the episodes and their neighbours", "[gen_demo]") {
    TempDir dir;
    demo::Summary summary = demo::generate(options_for(dir.path()));
    auto key = trajectories(dir.path());
    REQUIRE(key.size() == 300);
    CHECK(summary.rising == 18);  // 6% of 300
    std::set<std::string> rising, episode, spillover;
    for (const auto& [id, t] : key) {
        CHECK((t == "rising" || t == "episode" || t == "spillover" || t == "quiet"));
        if (t == "rising") rising.insert(id);
        if (t == "episode") episode.insert(id);
        if (t == "spillover") spillover.insert(id);
    }
    CHECK(int(rising.size()) == summary.rising);
    CHECK(int(spillover.size()) == summary.spillover);
    // About episode_rate x localities x years episodes start (0.04 x 300 = 12 expected; a
    // Poisson count, and a locality with a rising ramp may also have had one).
    CHECK(summary.episodes >= 3);
    CHECK(summary.episodes <= 30);
    CHECK(int(episode.size()) <= summary.episodes);
    // Every neighbour of a rising locality (whose 10-16 week ramp reaches its neighbours 4
    // weeks later) is touched: spillover unless it has an episode of its own; and only
    // neighbours of rising or episode localities are spillover.
    std::set<std::string> next_to_rising, next_to_any;
    for (const auto& row : read_csv(dir.path() / "localities.csv", "id,name,region,population,neighbours"))
        for (const auto& n : split(row[4], ';')) {
            if (rising.count(row[0])) next_to_rising.insert(n);
            if (rising.count(row[0]) || episode.count(row[0])) next_to_any.insert(n);
        }
    for (const auto& id : next_to_rising)
        if (!rising.count(id) && !episode.count(id)) CHECK(spillover.count(id) == 1);
    for (const auto& id : spillover) CHECK(next_to_any.count(id) == 1);

    TempDir none;
    auto options = options_for(none.path());
    options.rising_share = 0;
    options.episode_rate = 0;
    demo::Summary only_one = demo::generate(options);
    CHECK(only_one.rising == 1);  // the demo always has something to find
    CHECK(only_one.episodes == 0);
}

TEST_CASE("observations are valid ingest rows, sorted, split into history and weekly feed", "[gen_demo]") {
    TempDir dir;
    demo::Summary summary = demo::generate(options_for(dir.path()));
    std::map<std::string, std::string> district;  // id -> district code, e.g. "21"
    for (const auto& row : read_csv(dir.path() / "localities.csv", "id,name,region,population,neighbours"))
        district[row[0]] = row[0].substr(3, 2);

    const std::set<std::string> count_kinds = {
        "school.enrolled", "school.dropouts", "incident.violence_against_children",
        "incident.armed_violence", "incident.drug_trafficking", "incident.child_exploitation",
        "incident.recruitment_attempt", "incident.abduction"};
    const std::set<std::string> presence_sources = {"field-a", "field-b", "community-radio",
                                                    "partner-ngo"};
    std::set<std::string> natural_keys;
    std::map<std::string, int> weekly_violence_rows;
    std::size_t total = 0;

    // Checks every row of one file; returns its first and last time.
    auto check_file = [&](const fs::path& path) {
        INFO(path);
        Table rows = read_csv(path, observation_header);
        REQUIRE_FALSE(rows.empty());
        total += rows.size();
        std::pair<TimePoint, std::string> previous{TimePoint{}, ""};
        for (const auto& row : rows) {
            INFO(row[0] << "," << row[1] << "," << row[2]);
            REQUIRE(row.size() == 6);
            REQUIRE(district.count(row[0]) == 1);
            TimePoint t = date(row[1]);
            CHECK(t <= end_time);
            std::pair<TimePoint, std::string> key{t, row[0]};
            CHECK(previous <= key);
            previous = key;
            double value = std::stod(row[3]);
            CHECK(std::isfinite(value));
            CHECK(value >= 0);
            CHECK(row[4] == "1");
            if (row[2] == "presence.report") {
                CHECK(value <= 1);
                CHECK(presence_sources.count(row[5]) == 1);
            } else {
                REQUIRE(count_kinds.count(row[2]) == 1);
                CHECK(value == std::floor(value));
                if (row[2].rfind("school.", 0) == 0)
                    CHECK(row[5] == "emis");
                else
                    CHECK(row[5] == "monitor-" + district[row[0]]);
                if (row[2] == "school.enrolled") CHECK(value > 0);
            }
            if (row[2] == "incident.violence_against_children") ++weekly_violence_rows[row[0]];
            // Re-ingesting replaces rows with the same natural key, so none may repeat.
            CHECK(natural_keys.insert(row[0] + "|" + row[1] + "|" + row[2] + "|" + row[5]).second);
        }
        return std::pair{date(rows.front()[1]), date(rows.back()[1])};
    };

    auto [history_first, history_last] = check_file(dir.path() / "history.csv");
    CHECK(history_first >= end_time - 52 * 7 * day + day);
    CHECK(history_last <= end_time - 8 * 7 * day);

    auto feeds = feed_files(dir.path());
    REQUIRE(feeds.size() == 8);
    CHECK(summary.feed_files == 8);
    for (int k = 1; k <= 8; ++k) {
        TimePoint week_end = end_time - (8 - k) * 7 * day;
        std::string name = feeds[std::size_t(k - 1)].filename().string();
        char expected[64];
        std::snprintf(expected, sizeof expected, "week-%03d-%s.csv", k,
                      format_time(week_end).substr(0, 10).c_str());
        CHECK(name == expected);
        auto [first, last] = check_file(feeds[std::size_t(k - 1)]);
        CHECK(first > week_end - 7 * day);
        CHECK(first > history_last);
        CHECK(last <= week_end);
    }
    CHECK(summary.observations == total);

    // Weekly monitors (about 70% of localities) report violence every week, zero included.
    int weekly = 0;
    for (const auto& [id, rows] : weekly_violence_rows)
        if (rows == 52) ++weekly;
    CHECK(weekly >= 300 * 55 / 100);
    CHECK(weekly <= 300 * 85 / 100);
}

TEST_CASE("rising localities show more presence reports and dropouts in the last 8 weeks", "[gen_demo]") {
    for (std::uint64_t seed : {1, 2, 3, 4, 5}) {
        INFO("seed " << seed);
        TempDir dir;
        demo::generate(options_for(dir.path(), seed));
        auto key = trajectories(dir.path());
        std::map<std::string, double> reports, dropouts, enrolled;
        for (const auto& feed : feed_files(dir.path()))
            for (const auto& row : read_csv(feed, observation_header)) {
                if (row[2] == "presence.report") reports[row[0]] += 1;
                if (row[2] == "school.dropouts") dropouts[row[0]] += std::stod(row[3]);
            }
        for (const auto& row : read_csv(dir.path() / "history.csv", observation_header))
            if (row[2] == "school.enrolled") enrolled[row[0]] = std::stod(row[3]);  // latest wins
        // A value over the localities of a trajectory that report that source at all (60%
        // have presence monitors, 90% report to the school system).
        auto mean_over = [&](const std::string& trajectory, auto value,
                             const std::map<std::string, double>& reporting) {
            double sum = 0;
            int n = 0;
            for (const auto& [id, t] : key)
                if (t == trajectory && reporting.count(id)) {
                    sum += value(id);
                    ++n;
                }
            REQUIRE(n > 0);
            return sum / n;
        };
        auto report_count = [&](const std::string& id) { return reports[id]; };
        auto dropout_rate = [&](const std::string& id) { return dropouts[id] / enrolled[id]; };
        std::map<std::string, double> monitored;
        for (const auto& row : read_csv(dir.path() / "history.csv", observation_header))
            if (row[2] == "presence.report") monitored[row[0]] = 1;
        double rising_reports = mean_over("rising", report_count, monitored);
        double quiet_reports = mean_over("quiet", report_count, monitored);
        CHECK(rising_reports > 4.0);
        CHECK(rising_reports > 5 * quiet_reports);
        CHECK(mean_over("spillover", report_count, monitored) > quiet_reports);
        CHECK(mean_over("rising", dropout_rate, enrolled) > 1.5 * mean_over("quiet", dropout_rate, enrolled));
        // About 60% of the localities have presence reports, about 90% school data.
        CHECK(monitored.size() > 300 * 45 / 100);
        CHECK(monitored.size() < 300 * 75 / 100);
        CHECK(enrolled.size() > 300 * 82 / 100);
        CHECK(enrolled.size() < 300 * 97 / 100);
    }
}

TEST_CASE("ground truth is weekly and concentrated where risk rose", "[gen_demo]") {
    for (std::uint64_t seed : {1, 2, 3}) {
        INFO("seed " << seed);
        TempDir dir;
        auto options = options_for(dir.path(), seed);
        options.years = 3;
        demo::generate(options);
        auto key = trajectories(dir.path());
        std::map<std::string, double> per_trajectory;
        std::map<std::string, int> localities;
        for (const auto& [id, t] : key) ++localities[t];
        std::pair<TimePoint, std::string> previous{TimePoint{}, ""};
        for (const auto& row : read_csv(dir.path() / "truth.csv", "locality,time,outcomes")) {
            REQUIRE(row.size() == 3);
            REQUIRE(key.count(row[0]) == 1);
            TimePoint t = date(row[1]);
            CHECK(t <= end_time);
            // The period is a week ending on the history's weekday.
            CHECK((end_time - t) % std::chrono::days{7} == std::chrono::seconds{0});
            std::pair<TimePoint, std::string> sort_key{t, row[0]};
            CHECK(previous < sort_key);
            previous = sort_key;
            double outcomes = std::stod(row[2]);
            CHECK(outcomes >= 1);
            per_trajectory[key[row[0]]] += outcomes;
        }
        REQUIRE(localities["episode"] > 0);
        double episode = per_trajectory["episode"] / localities["episode"];
        double spill = per_trajectory["spillover"] / localities["spillover"];
        double quiet = per_trajectory["quiet"] / std::max(1, localities["quiet"]);
        CHECK(episode > 3);
        CHECK(episode > 2 * spill);
        CHECK(spill > 4 * quiet);
        CHECK(quiet < 0.2);
    }
}

TEST_CASE("bad options and unwritable places are refused with their name", "[gen_demo]") {
    TempDir dir;
    auto options = options_for(dir.path());
    options.localities = 0;
    CHECK_THROWS_AS(demo::generate(options), std::invalid_argument);
    options = options_for(dir.path());
    options.feed_weeks = 52;  // would leave no history
    CHECK_THROWS_WITH(demo::generate(options), Catch::Contains("feed_weeks"));
    options = options_for(dir.path());
    options.rising_share = 1.5;
    CHECK_THROWS_AS(demo::generate(options), std::invalid_argument);
    options = options_for(dir.path());
    options.episode_rate = -0.1;
    CHECK_THROWS_WITH(demo::generate(options), Catch::Contains("episode_rate"));

    fs::path file = dir.path() / "a-file";
    std::ofstream(file) << "x";
    options = options_for(file / "demo");
    CHECK_THROWS_WITH(demo::generate(options), Catch::Contains(file.string()));
}

TEST_CASE("progress runs forward to completion", "[gen_demo]") {
    TempDir dir;
    auto options = options_for(dir.path());
    std::vector<double> seen;
    options.progress = [&](double f) { seen.push_back(f); };
    demo::generate(options);
    REQUIRE(seen.size() >= 3);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    CHECK(seen.front() >= 0);
    CHECK(seen.back() == 1.0);
}

TEST_CASE("a new run replaces the feed of an earlier one and nothing else", "[gen_demo]") {
    TempDir dir;
    demo::generate(options_for(dir.path()));
    std::ofstream(dir.path() / "feed" / "notes.txt") << "kept";
    auto options = options_for(dir.path());
    options.feed_weeks = 2;
    demo::generate(options);
    auto files = feed_files(dir.path());
    REQUIRE(files.size() == 3);
    CHECK(files[0].filename() == "notes.txt");
    CHECK(files[1].filename() == "week-001-2026-03-08.csv");
    CHECK(files[2].filename() == "week-002-2026-03-15.csv");
}
