#include "gen_demo.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <vector>

namespace ews::demo {
namespace {

using std::chrono::days;
using std::chrono::sys_days;

constexpr int weeks_per_year = 52;
constexpr int district_count = 12;  // 4 regions x 3 districts

// splitmix64: turns (seed, stream, index) into well-spread seeds for independent streams,
// so that a locality's draws do not depend on how many draws other localities made.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
    return mix(mix(mix(seed) ^ stream) ^ index);
}

// Random draws defined here rather than by std:: distributions, whose algorithms are
// unspecified and so differ between library versions; the output must not.
class Random {
public:
    explicit Random(std::uint64_t seed) : engine_(seed) {}

    // Returns: uniform in [0, 1).
    double uniform() { return double(engine_() >> 11) * 0x1.0p-53; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    // Returns: uniform integer in [0, n), n > 0.
    int below(int n) { return std::min(n - 1, int(uniform() * n)); }
    bool chance(double p) { return uniform() < p; }

    // Standard normal by Box-Muller; the second value of each pair is kept for the next call.
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1 = 1.0 - uniform();  // (0, 1]: log(u1) is finite
        double u2 = uniform();
        double r = std::sqrt(-2.0 * std::log(u1));
        double a = 2.0 * std::numbers::pi * u2;
        spare_ = r * std::sin(a);
        has_spare_ = true;
        return r * std::cos(a);
    }

    // Poisson by inversion for the small means used here; normal approximation above 40.
    long poisson(double mean) {
        if (!(mean > 0)) return 0;
        if (mean > 40) return std::max(0L, std::lround(mean + std::sqrt(mean) * normal()));
        double u = uniform();
        double p = std::exp(-mean);
        double cdf = p;
        long k = 0;
        while (u > cdf && k < 200) {
            ++k;
            p *= mean / double(k);
            cdf += p;
        }
        return k;
    }

    // Binomial by inversion when the mean is small, normal approximation otherwise.
    long binomial(long n, double p) {
        if (n <= 0 || !(p > 0)) return 0;
        if (p >= 1) return n;
        if (p > 0.5) return n - binomial(n, 1.0 - p);
        double mean = double(n) * p;
        if (mean > 30) {
            double sd = std::sqrt(mean * (1.0 - p));
            return std::clamp(std::lround(mean + sd * normal()), 0L, n);
        }
        double u = uniform();
        double pmf = std::exp(double(n) * std::log1p(-p));
        double cdf = pmf;
        double ratio = p / (1.0 - p);
        long k = 0;
        while (u > cdf && k < n) {
            pmf *= double(n - k) / double(k + 1) * ratio;
            ++k;
            cdf += pmf;
        }
        return k;
    }

private:
    std::mt19937_64 engine_;
    double spare_ = 0;
    bool has_spare_ = false;
};

enum class Trajectory : std::uint8_t { quiet, rising, episode, spillover };

std::string_view to_string(Trajectory t) {
    switch (t) {
        case Trajectory::quiet: return "quiet";
        case Trajectory::rising: return "rising";
        case Trajectory::episode: return "episode";
        case Trajectory::spillover: return "spillover";
    }
    return "quiet";
}

struct Place {
    std::string id;
    std::string name;
    std::string region;
    int district = 0;  // 0..11
    long population = 0;
    std::vector<int> neighbours;
    Trajectory trajectory = Trajectory::quiet;
};

// Kinds in the order rows of the same day and locality are written.
constexpr std::array<std::string_view, 9> kind_names = {
    "school.enrolled",
    "school.dropouts",
    "incident.violence_against_children",
    "incident.armed_violence",
    "incident.drug_trafficking",
    "incident.child_exploitation",
    "incident.recruitment_attempt",
    "incident.abduction",
    "presence.report",
};
constexpr std::uint8_t kind_enrolled = 0;
constexpr std::uint8_t kind_dropouts = 1;
constexpr std::uint8_t kind_first_incident = 2;
constexpr std::uint8_t kind_presence = 8;

// Weekly incident means. The first four scale with population (per 10k children), the
// last two are absolute and grow with risk rather than being multiplied by it, since they
// are the sentinel categories (recruitment attempts, abductions): they come with a group
// actively recruiting, nearly never in a quiet locality (once in 2,000 weeks) and rarely
// with the moderate risk of a neighbour's spill-over (risk up to 0.15 adds nothing).
constexpr std::array<double, 4> incident_per_10k = {0.4, 0.3, 0.3, 0.15};

constexpr std::array<std::string_view, 4> presence_sources = {"field-a", "field-b",
                                                              "community-radio", "partner-ngo"};
constexpr std::uint8_t source_emis = 0;
constexpr std::uint8_t source_monitor = 1;   // "monitor-<district number>"
constexpr std::uint8_t source_presence = 2;  // + index into presence_sources

struct Row {
    std::int32_t day;    // days since 1970-01-01
    std::int32_t place;  // index into places; places are in id order
    std::uint8_t kind;
    std::uint8_t source;
    double value;
};

bool row_before(const Row& a, const Row& b) {
    if (a.day != b.day) return a.day < b.day;
    if (a.place != b.place) return a.place < b.place;
    if (a.kind != b.kind) return a.kind < b.kind;
    return a.source < b.source;  // (day, place, kind, source) is unique: the natural key
}

struct Month {
    std::int32_t first_day;
    std::int32_t last_day;
    int month_of_year;  // 0..11
    int first_week;     // weeks whose last day falls in the month: [first_week, last_week]
    int last_week;
    bool complete;      // false for the month holding end_day when end_day is not its last day
};

// Pronounceable syllables; names are made of 2-4 of them, so they are fictional.
constexpr std::array<std::string_view, 32> syllables = {
    "ka", "lo", "mi", "ren", "sa", "tu", "vel", "no", "ri", "da", "ba", "shi", "mo", "ze", "la", "ton",
    "wa", "ki", "nu", "fe", "po", "gan", "si", "ma", "ol", "bi", "ra", "tes", "un", "ya", "dor", "ne",
};

std::string make_name(Random& rng, int count) {
    std::string name;
    for (int i = 0; i < count; ++i) name += syllables[std::size_t(rng.below(int(syllables.size())))];
    name[0] = char(name[0] - 'a' + 'A');
    return name;
}

int digits(int n) {
    int d = 1;
    while (n >= 10) {
        n /= 10;
        ++d;
    }
    return d;
}

void link(std::vector<Place>& places, int a, int b) {
    if (a == b) return;
    auto& na = places[std::size_t(a)].neighbours;
    if (std::find(na.begin(), na.end(), b) != na.end()) return;
    na.push_back(b);
    places[std::size_t(b)].neighbours.push_back(a);
}

// Localities in id order, spread evenly over the 12 districts. Within a district they sit
// on a ring with chords to the locality ceil(sqrt(n)) further on (a rolled-up grid), so
// each has 2 to 4 neighbours; consecutive districts are joined by one link where both ends
// still have fewer than 4.
std::vector<Place> make_places(int count, Random& rng) {
    std::vector<Place> places;
    places.reserve(std::size_t(count));
    std::array<int, district_count> first{};
    std::array<int, district_count> size{};
    int width = std::max(3, digits(count / district_count + 1));
    std::unordered_set<std::string> names;
    for (int d = 0; d < district_count; ++d) {
        first[std::size_t(d)] = int(places.size());
        size[std::size_t(d)] = count / district_count + (d < count % district_count ? 1 : 0);
        std::string district_code =
            "DM-" + std::to_string(d / 3 + 1) + std::to_string(d % 3 + 1);
        std::string region = "DM/DM-" + std::to_string(d / 3 + 1) + "/" + district_code;
        for (int i = 0; i < size[std::size_t(d)]; ++i) {
            Place p;
            std::string number = std::to_string(i + 1);
            p.id = district_code + "-" + std::string(std::size_t(width) - number.size(), '0') + number;
            p.region = region;
            p.district = d;
            int syllable_count = rng.chance(0.6) ? 2 : 3;
            for (int attempt = 0;; ++attempt) {
                if (attempt > 0 && attempt % 20 == 0) ++syllable_count;
                std::string candidate = make_name(rng, syllable_count);
                if (names.insert(candidate).second) {
                    p.name = candidate + " (demo)";
                    break;
                }
            }
            // Children per locality: lognormal around 2000, kept within 300..15000.
            double children = std::exp(std::log(2000.0) + 0.8 * rng.normal());
            p.population = std::lround(std::clamp(children, 300.0, 15000.0));
            places.push_back(std::move(p));
        }
    }
    for (int d = 0; d < district_count; ++d) {
        int n = size[std::size_t(d)];
        int base = first[std::size_t(d)];
        if (n < 2) continue;
        for (int i = 0; i < n; ++i) link(places, base + i, base + (i + 1) % n);
        int chord = int(std::ceil(std::sqrt(double(n))));
        if (chord >= 2)
            for (int i = 0; i + chord < n; ++i) link(places, base + i, base + i + chord);
    }
    for (int d = 0; d + 1 < district_count; ++d) {
        if (size[std::size_t(d)] == 0 || size[std::size_t(d + 1)] == 0) continue;
        int a = first[std::size_t(d)] + size[std::size_t(d)] - 1;
        int b = first[std::size_t(d + 1)];
        if (places[std::size_t(a)].neighbours.size() < 4 && places[std::size_t(b)].neighbours.size() < 4)
            link(places, a, b);
    }
    for (auto& p : places) std::sort(p.neighbours.begin(), p.neighbours.end());
    return places;
}

// Buffered file that reports failures with the path and the system's reason.
class CsvFile {
public:
    explicit CsvFile(std::filesystem::path path) : path_(std::move(path)) {
        file_ = std::fopen(path_.c_str(), "wb");
        if (!file_) fail("cannot create");
        buffer_.reserve(1 << 20);
    }
    CsvFile(const CsvFile&) = delete;
    CsvFile& operator=(const CsvFile&) = delete;
    ~CsvFile() {
        if (file_) std::fclose(file_);
    }

    std::string& buffer() { return buffer_; }
    void maybe_flush() {
        if (buffer_.size() >= (1 << 20)) flush();
    }
    void close() {
        flush();
        std::FILE* f = file_;
        file_ = nullptr;
        if (std::fclose(f) != 0) fail("cannot write");
    }

private:
    void flush() {
        if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
            fail("cannot write");
        buffer_.clear();
    }
    [[noreturn]] void fail(const char* what) {
        int error = errno;
        throw std::runtime_error(path_.string() + ": " + what + ": " + std::strerror(error));
    }

    std::filesystem::path path_;
    std::FILE* file_ = nullptr;
    std::string buffer_;
};

void append_integer(std::string& out, long long v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

void append_fixed3(std::string& out, double v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 3);
    out.append(buf, r.ptr);
}

std::string iso_date(std::int32_t day) {
    return format_time(TimePoint{sys_days{days{day}}}).substr(0, 10);
}

void validate(const Options& o) {
    if (o.dir.empty()) throw std::invalid_argument("gen-demo: dir: must not be empty");
    if (o.localities < 1 || o.localities > 1'000'000)
        throw std::invalid_argument("gen-demo: localities: " + std::to_string(o.localities) +
                                    " is outside 1..1000000");
    if (o.years < 1 || o.years > 50)
        throw std::invalid_argument("gen-demo: years: " + std::to_string(o.years) +
                                    " is outside 1..50");
    int weeks = o.years * weeks_per_year;
    if (o.feed_weeks < 0 || o.feed_weeks >= weeks)
        throw std::invalid_argument("gen-demo: feed_weeks: " + std::to_string(o.feed_weeks) +
                                    " is outside 0.." + std::to_string(weeks - 1) +
                                    " (history must keep at least one week)");
    if (!(o.rising_share >= 0 && o.rising_share <= 1))
        throw std::invalid_argument("gen-demo: rising_share: must be within 0..1");
    if (!(o.episode_rate >= 0 && o.episode_rate <= 1))
        throw std::invalid_argument("gen-demo: episode_rate: must be within 0..1");
}

void make_directory(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw std::runtime_error(dir.string() + ": cannot create directory: " + ec.message());
    if (!std::filesystem::is_directory(dir, ec))
        throw std::runtime_error(dir.string() + ": cannot create directory: not a directory");
}

// Feed files of an earlier run would be replayed with stale dates; only this module's own
// naming pattern is removed.
void remove_old_feed(const std::filesystem::path& feed) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(feed, ec)) {
        std::string name = entry.path().filename().string();
        if (name.starts_with("week-") && name.ends_with(".csv") && entry.is_regular_file()) {
            std::filesystem::remove(entry.path(), ec);
            if (ec)
                throw std::runtime_error(entry.path().string() + ": cannot remove: " + ec.message());
        }
    }
    if (ec) throw std::runtime_error(feed.string() + ": cannot list: " + ec.message());
}

}  // namespace

Summary generate(const Options& options) {
    validate(options);
    auto report = [&](double fraction) {
        if (options.progress) options.progress(std::clamp(fraction, 0.0, 1.0));
    };

    const int n = options.localities;
    const int weeks = options.years * weeks_per_year;
    const std::int32_t end_day =
        std::int32_t(std::chrono::floor<days>(options.end).time_since_epoch().count());
    const std::int32_t start_day = end_day - 7 * weeks + 1;
    // Week w covers days [last - 6, last] with last = week_last(w); the last week ends on end_day.
    auto week_last = [&](int w) { return end_day - 7 * (weeks - 1 - w); };
    auto week_of = [&](std::int32_t day) { return weeks - 1 - (end_day - day) / 7; };

    // Calendar months starting inside [start_day, end_day]: school data and truth are
    // monthly. Enrolment is known at a month's start; dropouts and outcomes only once the
    // month is over, so an incomplete last month has enrolment only.
    std::vector<Month> months;
    {
        using namespace std::chrono;
        year_month ym = year_month_day{sys_days{days{start_day}}}.year() /
                        year_month_day{sys_days{days{start_day}}}.month();
        for (;; ym += std::chrono::months{1}) {
            auto first = std::int32_t(sys_days{ym / 1}.time_since_epoch().count());
            auto final_day = std::int32_t(sys_days{ym / std::chrono::last}.time_since_epoch().count());
            if (first > end_day) break;
            if (first < start_day) continue;
            // Weeks ending in the month: the week holding its first day ends on or after
            // that day; the week holding its last day may end in the next month.
            bool complete = final_day <= end_day;
            int last_week = week_of(std::min(final_day, end_day));
            if (week_last(last_week) > final_day) --last_week;
            months.push_back({first, final_day, int(unsigned(ym.month())) - 1, week_of(first),
                              last_week, complete});
        }
    }

    Random layout(stream_seed(options.seed, 1, 0));
    std::vector<Place> places = make_places(n, layout);
    report(0.05);

    // Latent risk per locality and week, 0..1: a background that drifts around the
    // locality's own level, episodes of deterioration (a ramp, a plateau, a decline) that
    // start at random, and spill-over: a share of each neighbour's episode, some weeks later.
    const std::size_t cells = std::size_t(n) * std::size_t(weeks);
    std::vector<double> background(cells);
    std::vector<double> own(cells, 0.0);  // the locality's own episodes
    auto cell = [&](int p, int w) {
        return std::size_t(p) * std::size_t(weeks) + std::size_t(std::clamp(w, 0, weeks - 1));
    };
    int rising = std::clamp(int(std::lround(options.rising_share * n)), 1, n);
    {
        std::vector<int> order(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) order[std::size_t(i)] = i;
        for (int i = 0; i < rising; ++i) {
            int j = i + layout.below(n - i);
            std::swap(order[std::size_t(i)], order[std::size_t(j)]);
            places[std::size_t(order[std::size_t(i)])].trajectory = Trajectory::rising;
        }
    }
    int episodes = 0;
    const double hazard = options.episode_rate / double(weeks_per_year);
    for (int p = 0; p < n; ++p) {
        Place& place = places[std::size_t(p)];
        Random rng(stream_seed(options.seed, 2, std::uint64_t(p)));
        const double level = rng.uniform(0.01, 0.04);
        double x = level;
        for (int w = 0; w < weeks; ++w) {
            x = level + 0.9 * (x - level) + 0.008 * rng.normal();
            background[cell(p, w)] = std::max(0.0, x);
        }
        auto raise_own = [&](int w, double v) {
            if (w >= 0 && w < weeks) own[cell(p, w)] = std::max(own[cell(p, w)], v);
        };
        // Episodes at random, at least half a year apart.
        for (int w = 0; w < weeks;) {
            if (!rng.chance(hazard)) {
                ++w;
                continue;
            }
            const int ramp = 8 + rng.below(13);
            const int hold = 6 + rng.below(27);
            const int fall = 8 + rng.below(17);
            const double peak = rng.uniform(0.5, 1.0);
            for (int k = 0; k < ramp + hold + fall; ++k) {
                double shape = k < ramp          ? double(k + 1) / double(ramp)
                               : k < ramp + hold ? 1.0
                                                 : 1.0 - double(k - ramp - hold + 1) / double(fall + 1);
                raise_own(w + k, peak * shape);
            }
            ++episodes;
            if (place.trajectory == Trajectory::quiet) place.trajectory = Trajectory::episode;
            w += ramp + hold + fall + weeks_per_year / 2;
        }
        // A deterioration under way when the history ends: a ramp over its last 10..16 weeks.
        if (place.trajectory == Trajectory::rising) {
            const int ramp = 10 + rng.below(7);
            const double peak = rng.uniform(0.8, 1.0);
            for (int k = 1; k <= ramp; ++k) raise_own(weeks - ramp - 1 + k, peak * double(k) / double(ramp));
        }
    }
    constexpr double spill_share = 0.3;
    constexpr int spill_lag_weeks = 4;
    std::vector<double> risk(cells);
    auto risk_at = [&](int p, int w) { return risk[cell(p, w)]; };
    int spillover = 0;
    for (int p = 0; p < n; ++p) {
        Place& place = places[std::size_t(p)];
        bool touched = false;
        for (int w = 0; w < weeks; ++w) {
            double from_neighbours = 0;
            if (w >= spill_lag_weeks)
                for (int q : place.neighbours)
                    from_neighbours = std::max(from_neighbours, own[cell(q, w - spill_lag_weeks)]);
            touched = touched || from_neighbours > 0;
            risk[cell(p, w)] =
                std::min(1.0, background[cell(p, w)] + own[cell(p, w)] + spill_share * from_neighbours);
        }
        if (touched && place.trajectory == Trajectory::quiet) {
            place.trajectory = Trajectory::spillover;
            ++spillover;
        }
    }
    background = {};
    own = {};
    report(0.1);

    // Observations and ground truth, one independent stream per locality.
    std::vector<Row> rows;
    rows.reserve(std::size_t(n) * std::size_t(weeks) * 2 + std::size_t(n) * months.size() * 2);
    struct Outcome {
        std::int32_t day;
        std::int32_t place;
        long outcomes;
    };
    std::vector<Outcome> truth;
    const int progress_step = std::max(1, n / 100);
    for (int p = 0; p < n; ++p) {
        const Place& place = places[std::size_t(p)];
        Random rng(stream_seed(options.seed, 3, std::uint64_t(p)));
        const double population = double(place.population);
        const bool weekly_monitor = rng.chance(0.7);
        const double dropout_base = rng.uniform(0.003, 0.01);
        // No source sees everywhere: field monitors of group presence reach 60% of the
        // localities, and 10% have no school reporting to the education data system.
        const bool presence_monitored = rng.chance(0.6);
        const bool school_reporting = rng.chance(0.9);
        double enrolment_share = 0.6 * (1.0 + 0.03 * rng.normal());

        for (const Month& m : months) {
            if (!school_reporting) break;
            enrolment_share *= 1.0 + 0.01 * rng.normal();
            long enrolled = std::max(1L, std::lround(enrolment_share * population));
            rows.push_back({m.first_day, p, kind_enrolled, source_emis, double(enrolled)});
            if (!m.complete) continue;
            double risk_sum = 0;
            for (std::int32_t d = m.first_day; d <= m.last_day; ++d) risk_sum += risk_at(p, week_of(d));
            double month_risk = risk_sum / double(m.last_day - m.first_day + 1);
            double seasonal = 1.0 + 0.3 * std::sin(2.0 * std::numbers::pi * m.month_of_year / 12.0);
            double rate = std::min(1.0, dropout_base * seasonal * (1.0 + 2.5 * month_risk));
            rows.push_back({m.last_day, p, kind_dropouts, source_emis, double(rng.binomial(enrolled, rate))});
        }

        std::array<int, 28> slots{};  // 7 days x 4 presence sources: one report each at most
        for (int w = 0; w < weeks; ++w) {
            const double r = risk_at(p, w);
            const std::int32_t last = week_last(w);
            // Verified outcomes (e.g. recruitment cases) follow risk 6 weeks later: Poisson
            // with mean 0.0003 + 0.5 x risk above 0.1. The background alone yields about one
            // outcome per quiet locality in 60 years, so outcomes mark real deterioration.
            if (long k = rng.poisson(0.0003 + 0.5 * std::max(0.0, risk_at(p, w - 6) - 0.1)); k > 0)
                truth.push_back({last, p, k});
            for (std::size_t c = 0; c < 6; ++c) {
                double mean = c < incident_per_10k.size()
                                  ? incident_per_10k[c] * population / 10000.0 * (1.0 + 4.0 * r)
                                  : (c == 4 ? 0.0003 + 0.2 * std::max(0.0, r - 0.15)
                                            : 0.0002 + 0.1 * std::max(0.0, r - 0.15));
                long count = rng.poisson(mean);
                // A weekly monitor reports violence even when there was none, so that
                // "no report" and "zero incidents" stay distinguishable.
                if (count > 0 || (c == 0 && weekly_monitor))
                    rows.push_back({last, p, std::uint8_t(kind_first_incident + c), source_monitor,
                                    double(count)});
            }
            if (!presence_monitored) continue;
            const double rate = 0.02 + 1.5 * r;
            // Risk up to 0.1 is background noise: reports it brings are rumours of low confidence.
            const double signal = 1.5 * std::max(0.0, r - 0.1);
            long reports = std::min<long>(rng.poisson(rate), long(slots.size()));
            for (int i = 0; i < int(slots.size()); ++i) slots[std::size_t(i)] = i;
            for (int i = 0; i < reports; ++i) {
                int j = i + rng.below(int(slots.size()) - i);
                std::swap(slots[std::size_t(i)], slots[std::size_t(j)]);
                int slot = slots[std::size_t(i)];
                // Each report is either driven by the group (probability signal / rate)
                // and then fairly confident, or a rumour of low confidence.
                double confidence =
                    rng.chance(signal / rate)
                        ? std::clamp(0.5 + 0.4 * r + 0.08 * rng.normal(), 0.0, 1.0)
                        : rng.uniform(0.2, 0.5);
                confidence = std::round(confidence * 1000.0) / 1000.0;
                rows.push_back({last - 6 + slot / 4, p, kind_presence,
                                std::uint8_t(source_presence + slot % 4), confidence});
            }
        }
        if ((p + 1) % progress_step == 0) report(0.1 + 0.6 * double(p + 1) / double(n));
    }

    std::sort(rows.begin(), rows.end(), row_before);
    std::sort(truth.begin(), truth.end(), [](const Outcome& a, const Outcome& b) {
        return a.day != b.day ? a.day < b.day : a.place < b.place;
    });
    report(0.75);

    // Writing.
    const std::filesystem::path& dir = options.dir;
    make_directory(dir);
    const std::filesystem::path feed_dir = dir / "feed";
    make_directory(feed_dir);
    remove_old_feed(feed_dir);

    std::vector<std::array<char, 10>> dates(std::size_t(end_day - start_day + 1));
    for (std::int32_t d = start_day; d <= end_day; ++d) {
        std::string s = iso_date(d);
        std::copy(s.begin(), s.end(), dates[std::size_t(d - start_day)].begin());
    }
    auto append_date = [&](std::string& out, std::int32_t day) {
        const auto& s = dates[std::size_t(day - start_day)];
        out.append(s.data(), s.size());
    };

    {
        CsvFile f(dir / "localities.csv");
        std::string& out = f.buffer();
        out += "id,name,region,population,neighbours\n";
        for (const Place& place : places) {
            out += place.id;
            out += ',';
            out += place.name;
            out += ',';
            out += place.region;
            out += ',';
            append_integer(out, place.population);
            out += ',';
            for (std::size_t i = 0; i < place.neighbours.size(); ++i) {
                if (i) out += ';';
                out += places[std::size_t(place.neighbours[i])].id;
            }
            out += '\n';
            f.maybe_flush();
        }
        f.close();
    }
    {
        CsvFile f(dir / "scenario.csv");
        std::string& out = f.buffer();
        out += "locality,trajectory\n";
        for (const Place& place : places) {
            out += place.id;
            out += ',';
            out += to_string(place.trajectory);
            out += '\n';
            f.maybe_flush();
        }
        f.close();
    }
    {
        CsvFile f(dir / "truth.csv");
        std::string& out = f.buffer();
        out += "locality,time,outcomes\n";
        for (const Outcome& o : truth) {
            out += places[std::size_t(o.place)].id;
            out += ',';
            append_date(out, o.day);
            out += ',';
            append_integer(out, o.outcomes);
            out += '\n';
            f.maybe_flush();
        }
        f.close();
    }

    const std::string header = "locality,time,kind,value,weight,source\n";
    std::vector<std::string> monitor_sources(district_count);
    for (int d = 0; d < district_count; ++d)
        monitor_sources[std::size_t(d)] = "monitor-" + std::to_string(d / 3 + 1) + std::to_string(d % 3 + 1);
    auto write_rows = [&](const std::filesystem::path& path, std::size_t from, std::size_t to) {
        CsvFile f(path);
        std::string& out = f.buffer();
        out += header;
        for (std::size_t i = from; i < to; ++i) {
            const Row& row = rows[i];
            const Place& place = places[std::size_t(row.place)];
            out += place.id;
            out += ',';
            append_date(out, row.day);
            out += ',';
            out += kind_names[row.kind];
            out += ',';
            if (row.kind == kind_presence)
                append_fixed3(out, row.value);
            else
                append_integer(out, std::llround(row.value));
            out += ",1,";
            if (row.source == source_emis)
                out += "emis";
            else if (row.source == source_monitor)
                out += monitor_sources[std::size_t(place.district)];
            else
                out += presence_sources[std::size_t(row.source - source_presence)];
            out += '\n';
            f.maybe_flush();
            if ((i + 1) % 262144 == 0) report(0.75 + 0.25 * double(i + 1) / double(rows.size()));
        }
        f.close();
    };

    const int feed_weeks = options.feed_weeks;
    const std::int32_t history_end = end_day - 7 * feed_weeks;
    auto upper = [&](std::int32_t day) {
        return std::size_t(std::partition_point(rows.begin(), rows.end(),
                                                [day](const Row& r) { return r.day <= day; }) -
                           rows.begin());
    };
    std::size_t from = 0;
    std::size_t to = upper(history_end);
    write_rows(dir / "history.csv", from, to);
    for (int k = 1; k <= feed_weeks; ++k) {
        std::int32_t last = end_day - 7 * (feed_weeks - k);
        from = to;
        to = upper(last);
        char name[40];
        std::snprintf(name, sizeof name, "week-%03d-", k);
        write_rows(feed_dir / (name + iso_date(last) + ".csv"), from, to);
    }
    report(1.0);

    Summary summary;
    summary.localities = n;
    summary.rising = rising;
    summary.spillover = spillover;
    summary.episodes = episodes;
    summary.observations = rows.size();
    summary.feed_files = std::size_t(feed_weeks);
    return summary;
}

}  // namespace ews::demo
