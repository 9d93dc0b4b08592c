// ewsd: the early-warning daemon. Parses the command line, loads the configuration and hands
// over to run_daemon(); everything else lives in the modules.
#include "allocator.hpp"
#include "app.hpp"
#include "config.hpp"
#include "logging.hpp"
#include "plugin_checks.hpp"
#include "plugin_host.hpp"
#include "quarantine.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
    ews::keep_freed_memory();
    CLI::App cli{"ewsd: early-warning daemon for child-recruitment prevention programmes"};
    std::string config_file = "/etc/ewsd/ewsd.toml";
    bool check_config = false, once = false, version = false;
    std::string at, log_level;
    cli.add_option("-c,--config", config_file, "configuration file (TOML)");
    cli.add_flag("--check-config", check_config, "validate the configuration and exit (0 ok, 1 invalid)");
    cli.add_flag("--once", once, "ingest what is waiting, evaluate once, publish, and exit");
    cli.add_option("--at", at, "with --once: evaluate as of this time (RFC 3339 date or date-time)");
    cli.add_option("--log-level", log_level, "override [daemon] log_level");
    cli.add_flag("--version", version, "print the version and exit");
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return cli.exit(e) == 0 ? 0 : 2;
    }
    if (version) {
        std::cout << "ewsd " << EWS_VERSION << "\n";
        return 0;
    }

    if (!log_level.empty() && !ews::parse_log_level(log_level)) {
        std::cerr << "ewsd: --log-level '" << log_level
                  << "': expected one of trace, debug, info, warn, error, critical, off\n";
        return 2;
    }
    // Under systemd the journal adds timestamps itself and takes the priority prefixes.
    ews::setup_logging(ews::stderr_is_journal());

    ews::Config config;
    try {
        config = ews::load_config(config_file);
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
    if (check_config) {
        // The plugins validate their own [plugins.<name>] tables, so they are loaded too.
        try {
            // Files the daemon has quarantined are not loaded here either: one that crashed
            // the daemon would crash this check too.
            const ews::Quarantine quarantine(config.state_dir);
            auto plugins = ews::load_plugins(config.plugin_dir, config.plugin_params,
                                             [&](const std::filesystem::path& file) {
                                                 return quarantine.reason_for(file);
                                             });
            for (const auto& q : plugins.quarantined)
                std::cerr << q.file.string() << ": quarantined, not loaded: " << q.reason << "\n";
            for (const auto& r : plugins.refused) std::cerr << ews::refusal_text(config, r) << "\n";
            if (!plugins.refused.empty()) return 1;
            std::cout << config_file << ": configuration is valid; plugins loaded:";
            for (const auto& p : plugins.loaded) std::cout << " " << p.name();
            std::cout << "\n";
        } catch (const std::exception& e) {
            std::cerr << config_file << ": daemon.plugin_dir: " << e.what() << "\n";
            return 1;
        }
        return 0;
    }
    spdlog::set_level(*ews::parse_log_level(log_level.empty() ? config.log_level : log_level));

    ews::RunOptions options;
    options.once = once;
    if (!log_level.empty()) options.log_level = log_level;
    if (!at.empty()) {
        if (!once) {
            std::cerr << "ewsd: --at needs --once\n";
            return 2;
        }
        options.at = ews::parse_time(at);
        if (!options.at) {
            std::cerr << "ewsd: --at '" << at << "': expected an RFC 3339 date or UTC date-time\n";
            return 2;
        }
    }
    return ews::run_daemon(config, options);
}
