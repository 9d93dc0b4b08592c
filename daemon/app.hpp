// app.hpp: the ewsd process. Wires config, pipeline, sockets, spool watch and signals, and
// runs the event loop on one thread (each ZeroMQ socket is used by this thread only).
// Construction order is here; teardown runs in reverse.
#pragma once

#include "config.hpp"

#include <optional>
#include <string>

namespace ews {

struct RunOptions {
    bool once = false;                  // ingest what waits, evaluate once, publish, exit
    std::optional<TimePoint> at;        // evaluate as of this time instead of the wall clock
    std::optional<std::string> log_level;  // --log-level: wins over [daemon] log_level, reloads too
};

// Runs the daemon until SIGTERM/SIGINT (or one pass with options.once).
// Returns: the process exit status (0 clean stop; 1 startup failure).
int run_daemon(const Config& config, const RunOptions& options);

}  // namespace ews
