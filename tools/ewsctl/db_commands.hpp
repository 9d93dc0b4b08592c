// db_commands.hpp: `ewsctl backup`, `ewsctl db stats` and `ewsctl db check`, the operator's
// view of the store file STATE_DIR/ewsd.db. Each reads it through a read-only connection of
// its own, so they run safely while the daemon writes (WAL), and none creates a database.
#pragma once

#include "config.hpp"

#include <iostream>
#include <string>

namespace ews::tools {

// Writes a consistent copy of the database to `out` (hidden temporary file beside it,
// integrity_check, rename), then prints its size and row counts.
// Returns: 0, or 1 with the reason on `err` (then nothing is at `out` that was not before).
int cmd_backup(const Config& config, const std::string& out, std::ostream& os = std::cout,
               std::ostream& err = std::cerr);

// Prints size, WAL size, rows per table, observation span and top kinds, last seq per
// endpoint and schema version: a table, or one JSON object when `json`.
// Returns: 0, or 1 with the reason on `err`.
int cmd_db_stats(const Config& config, bool json, std::ostream& os = std::cout,
                 std::ostream& err = std::cerr);

// Runs the full PRAGMA integrity_check and prints "ok" or each problem and how to restore.
// Returns: 0 when sound, 1 when damaged or unreadable.
int cmd_db_check(const Config& config, std::ostream& os = std::cout, std::ostream& err = std::cerr);

}  // namespace ews::tools
