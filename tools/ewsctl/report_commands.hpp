// report_commands.hpp: `ewsctl report --html`, `ewsctl scores` and `ewsctl alerts`, the views
// of prevention staff and of spreadsheets and other tools. None writes to the store.
#pragma once

#include "config.hpp"

#include <iostream>
#include <string>

namespace ews::tools {

struct ReportCommandOptions {
    std::string html;         // report: the file to write (replaced only when complete)
    std::string region;       // scope prefix; empty = all
    std::string at;           // RFC 3339; empty = now
    int periods = 12;         // report: periods of the trends
    int step_days = 7;        // report: days between them
    int compare_days = 28;    // report: "change since" this many days earlier
    std::string format = "table";  // scores and alerts: table | csv | json
    std::string output;       // scores and alerts: write here instead of stdout
};

// `ewsctl report --html OUT`. Returns: 0; 2 for a bad option; 1 for other failures (no
// database, no plugin, OUT not writable), with the reason on `err`.
int cmd_report(const Config& config, const ReportCommandOptions& o, std::ostream& out = std::cout,
               std::ostream& err = std::cerr);

// `ewsctl scores`: every locality in scope evaluated at --at, as a table, CSV or JSON.
int cmd_scores(const Config& config, const ReportCommandOptions& o, std::ostream& out = std::cout,
               std::ostream& err = std::cerr);

// `ewsctl alerts`: the open alerts (the true state of each locality), acknowledged or not,
// flapping or not, silenced or not, as a table, CSV or JSON.
int cmd_alerts(const Config& config, const ReportCommandOptions& o, std::ostream& out = std::cout,
               std::ostream& err = std::cerr);

}  // namespace ews::tools
