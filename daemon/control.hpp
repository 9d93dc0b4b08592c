// control.hpp: the local control socket (ROUTER at ipc://STATE_DIR/control.sock, for REQ clients) through which
// ewsctl changes data while the daemon runs, so that the store keeps one writer and the
// daemon's in-memory state stays true: silences, acknowledgements, and status. JSON requests,
// JSON replies; a malformed request gets {"error": "KEY: what is wrong"} and changes nothing.
//
// Requests (each op takes only the keys listed):
//   {"op":"silence_add", "locality":ID | "region":PREFIX, "until":TIME, "reason":R, "by":B}
//       -> {"ok":true, "id":N}
//   {"op":"silence_list", "all":BOOL}        -> {"silences":[silence_json(...), ...]}
//   {"op":"silence_expire", "id":N, "by":B}  -> {"ok":true} | {"error":"no silence N in force"}
//   {"op":"ack", "alert_id":ID, "by":B, "note":TEXT} -> {"ok":true, "alert_id", "locality", "at"}
//   {"op":"status"}                          -> the daemon's status object
// TIME is an RFC 3339 date or UTC date-time (parse_time).
#pragma once

#include "pipeline.hpp"
#include "store.hpp"

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace ews {

// Longest value accepted for a string field of a request, in bytes. validate_silence and the
// pipeline apply their own, possibly tighter, limits after this one.
inline constexpr std::size_t max_control_string_bytes = 1000;
// Larger requests are cut off by libzmq before they reach answer_control.
inline constexpr std::int64_t max_control_request_bytes = 64 * 1024;

// Returns: the socket file and the endpoint ("ipc://" + file) of the daemon using `state_dir`.
std::filesystem::path control_socket_file(const std::filesystem::path& state_dir);
std::string control_endpoint(const std::filesystem::path& state_dir);

// What a control request changes or reads. The daemon answers through its Pipeline (whose
// in-memory state must follow every change); ewsctl, when no daemon runs, through the store.
class ControlTarget {
public:
    virtual ~ControlTarget() = default;
    // Throws: std::invalid_argument naming the field (validate_silence), StoreError.
    virtual std::int64_t add_silence(Silence silence, TimePoint now) = 0;
    virtual std::vector<Silence> silences(TimePoint now, bool include_ended) = 0;
    // Returns: false when no silence `id` is in force at `at`.
    virtual bool expire_silence(std::int64_t id, const std::string& by, TimePoint at) = 0;
    // Throws: std::invalid_argument (no open alert `alert_id`, empty by), StoreError.
    virtual Acknowledgement acknowledge(const std::string& alert_id, const std::string& by,
                                        const std::string& note, TimePoint at) = 0;
};

// The store alone, for ewsctl when no daemon holds it: the same checks as the pipeline's
// (validate_silence against the stored localities; an ack must name an open alert, true or
// notified), each change stored and audited in one transaction by the store.
class StoreControl final : public ControlTarget {
public:
    explicit StoreControl(Store& store) : store_(store) {}
    std::int64_t add_silence(Silence silence, TimePoint now) override;
    std::vector<Silence> silences(TimePoint now, bool include_ended) override;
    bool expire_silence(std::int64_t id, const std::string& by, TimePoint at) override;
    Acknowledgement acknowledge(const std::string& alert_id, const std::string& by,
                                const std::string& note, TimePoint at) override;

private:
    Store& store_;
};

// Returns: the reply JSON text for one request JSON text. `now` is the time of the change
// (wall clock) and the time silences are listed as active at; `status` gives the status
// object's JSON text (an empty function answers "status" with an error). Never throws.
std::string answer_control(const std::string& request, ControlTarget& target, TimePoint now,
                           const std::function<std::string()>& status);
// The same through the daemon's pipeline.
std::string answer_control(const std::string& request, Pipeline& pipeline, TimePoint now,
                           const std::function<std::string()>& status);

// One silence as listed by silence_list: {id, locality | region, until, reason, by, created,
// expired (time or null), expired_by, held, active (at `now`)}.
nlohmann::json silence_json(const Silence& silence, TimePoint now);

class ControlServer {
public:
    // Binds a ROUTER socket at control_endpoint(state_dir) (libzmq replaces a socket file left by
    // a killed daemon) and makes the file mode 0660. Throws: std::runtime_error naming the
    // file when it cannot.
    ControlServer(zmq::context_t& context, const std::filesystem::path& state_dir);
    // Closes the socket and removes its file.
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;
    zmq::socket_t& socket() { return socket_; }
    // Receives one request (the socket is readable) and sends its answer.
    void handle(Pipeline& pipeline, TimePoint now, const std::function<std::string()>& status);

private:
    std::filesystem::path file_;
    zmq::socket_t socket_;
};

}  // namespace ews
