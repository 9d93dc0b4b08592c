// gen_demo.hpp: the synthetic scenario behind `ewsctl gen-demo` and `./run demo`.
//
// Writes a fictional country "DM" (the code stands for "demo": no real place, no real
// data, every locality name carries "(demo)") with aggregate observations per locality in
// the ingest formats of DESIGN.md, a ground-truth file for backtests, and the answer key
// saying which localities were made to deteriorate. Nothing generated describes a person.
//
// Deterministic: the same Options give byte-identical files. Every random draw comes from
// std::mt19937_64 through this module's own distribution functions, because the
// std:: distributions differ between standard library versions.
//
// Files written under Options::dir:
//   localities.csv   id,name,region,population,neighbours
//   history.csv      locality,time,kind,value,weight,source   (days up to end - feed_weeks weeks)
//   feed/week-NNN-YYYY-MM-DD.csv  the same columns, one file per fed week (NNN from 001,
//                    the date is the week's last day); older week-*.csv files there are removed
//   truth.csv        locality,time,outcomes   (weekly, dated on the week's last day; only
//                    weeks with outcomes > 0)
//   scenario.csv     locality,trajectory      (rising | episode | spillover | quiet; the
//                    daemon never reads it)
//
// The hidden model: each locality's latent risk (0..1) per week is a background drifting
// around its own level (AR(1)), plus episodes of deterioration that start at random
// (`episode_rate` per locality-year; ramp 8-20 weeks, plateau 6-32, decline 8-24, peak
// 0.5-1.0), plus 0.3 of the largest neighbouring episode 4 weeks earlier (spill-over). The
// `rising_share` localities also deteriorate over the last 10-16 weeks, so a live feed has
// something to find. Risk drives school dropout (monthly), incidents per category (weekly),
// presence reports (daily, per source) and, 6 weeks later, outcomes (truth.csv), each with
// its own noise. Trajectories: rising (deteriorating at the end), episode (an earlier
// episode of its own), spillover (a neighbour's episode only), quiet.
// Observation files are sorted by time, then locality; times are ISO dates.
#pragma once

#include "model.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>

namespace ews::demo {

struct Options {
    std::filesystem::path dir;
    int localities = 300;
    int years = 1;               // history length: 52 weeks per year, weeks end on `end`
    std::uint64_t seed = 1;
    ews::TimePoint end;          // last day of history (taken at its UTC day); callers pass today
    int feed_weeks = 0;          // the last K weeks go to dir/feed/, one file per week
    double rising_share = 0.06;  // share of localities deteriorating at the end (at least one)
    double episode_rate = 0.04;  // episodes of deterioration per locality-year, 0..1
    std::function<void(double fraction)> progress;  // optional; fraction in 0..1, ends at 1
};

struct Summary {
    int localities = 0;
    int rising = 0;
    int spillover = 0;              // touched only by neighbours' episodes
    int episodes = 0;               // random episodes started (not counting the rising ramps)
    std::size_t observations = 0;   // rows in history.csv plus all feed files
    std::size_t feed_files = 0;
};

// Generates the scenario into options.dir (created when missing).
// Throws: std::invalid_argument naming the option when an option is out of range
// (localities 1..1000000, years 1..50, feed_weeks 0..weeks-1, rising_share 0..1,
// episode_rate 0..1);
// std::runtime_error naming the path when a file or directory cannot be written.
Summary generate(const Options& options);

}  // namespace ews::demo
