#include "control.hpp"

#include "alerting.hpp"
#include "json_text.hpp"
#include "query.hpp"

#include <sys/un.h>

#include <exception>
#include <initializer_list>
#include <optional>
#include <set>
#include <stdexcept>

namespace ews {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// Thrown for a request the client got wrong; becomes {"error": what}.
struct RequestError {
    std::string what;
};

constexpr const char* known_ops = "silence_add, silence_list, silence_expire, ack or status";

// Rejects keys the op does not take: a misspelt optional key would otherwise be ignored
// silently (an ack without its note, a list without "all").
void only_keys(const Json& request, const std::string& op, std::initializer_list<const char*> keys) {
    for (const auto& [key, value] : request.items()) {
        if (key == "op") continue;
        bool known = false;
        for (const char* k : keys) known |= key == k;
        if (known) continue;
        std::string expected;
        for (const char* k : keys) expected += (expected.empty() ? "" : ", ") + std::string(k);
        throw RequestError{key + ": not a key of op \"" + op + "\" (it takes " +
                           (expected.empty() ? std::string("no other key") : expected) + ")"};
    }
}

// Returns: the string at `key`, or nullopt when the request has none.
// Throws: RequestError when it is not a string, is empty, or is longer than the limit.
std::optional<std::string> optional_text(const Json& request, const char* key) {
    if (!request.contains(key)) return std::nullopt;
    const Json& v = request.at(key);
    if (!v.is_string()) throw RequestError{std::string(key) + ": must be a string, got " + quoted_value(v)};
    std::string s = v.get<std::string>();
    if (s.empty()) throw RequestError{std::string(key) + ": must not be empty"};
    if (s.size() > max_control_string_bytes)
        throw RequestError{std::string(key) + ": longer than " +
                           std::to_string(max_control_string_bytes) + " bytes"};
    return s;
}

std::string required_text(const Json& request, const char* key, const char* meaning) {
    auto s = optional_text(request, key);
    if (!s) throw RequestError{std::string(key) + ": missing (" + meaning + ")"};
    return *s;
}

std::int64_t required_id(const Json& request, const char* key) {
    if (!request.contains(key)) throw RequestError{std::string(key) + ": missing (a silence id)"};
    const Json& v = request.at(key);
    // is_number_integer is also true for unsigned values; both fit once checked > 0 and
    // within int64 (nlohmann stores a value above INT64_MAX as unsigned).
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX) ||
        v.get<std::int64_t>() <= 0)
        throw RequestError{std::string(key) + ": must be a positive integer, got " + quoted_value(v)};
    return v.get<std::int64_t>();
}

Json silence_add(const Json& request, ControlTarget& target, TimePoint now) {
    only_keys(request, "silence_add", {"locality", "region", "until", "reason", "by"});
    Silence s;
    s.locality = optional_text(request, "locality").value_or("");
    s.region = optional_text(request, "region").value_or("");
    const std::string until = required_text(request, "until", "an RFC 3339 date or date-time");
    const auto t = parse_time(until);
    if (!t) throw RequestError{"until: not an RFC 3339 date or date-time: " + json_text(Json(until))};
    s.until = *t;
    s.reason = required_text(request, "reason", "why the alerts are silenced");
    s.by = required_text(request, "by", "who silences them");
    s.created = now;
    return Json{{"ok", true}, {"id", target.add_silence(std::move(s), now)}};
}

Json silence_list(const Json& request, ControlTarget& target, TimePoint now) {
    only_keys(request, "silence_list", {"all"});
    bool all = false;
    if (request.contains("all")) {
        const Json& v = request.at("all");
        if (!v.is_boolean()) throw RequestError{"all: must be true or false, got " + quoted_value(v)};
        all = v.get<bool>();
    }
    Json list = Json::array();
    for (const auto& s : target.silences(now, all)) list.push_back(silence_json(s, now));
    return Json{{"silences", std::move(list)}};
}

Json silence_expire(const Json& request, ControlTarget& target, TimePoint now) {
    only_keys(request, "silence_expire", {"id", "by"});
    const std::int64_t id = required_id(request, "id");
    const std::string by = required_text(request, "by", "who expires the silence");
    if (!target.expire_silence(id, by, now))
        throw RequestError{"no silence " + std::to_string(id) + " in force"};
    return Json{{"ok", true}};
}

Json ack(const Json& request, ControlTarget& target, TimePoint now) {
    only_keys(request, "ack", {"alert_id", "by", "note"});
    const std::string alert_id = required_text(request, "alert_id", "the id of an open alert");
    const std::string by = required_text(request, "by", "who acknowledges it");
    const std::string note = optional_text(request, "note").value_or("");
    const Acknowledgement a = target.acknowledge(alert_id, by, note, now);
    return Json{{"ok", true}, {"alert_id", a.alert_id}, {"locality", a.locality},
                {"by", a.by}, {"at", format_time(a.at)}};
}

Json status_reply(const Json& request, const std::function<std::string()>& status) {
    only_keys(request, "status", {});
    if (!status) throw RequestError{"status: no daemon runs here to report it"};
    Json reply = Json::parse(status(), nullptr, false);
    if (!reply.is_object()) throw std::runtime_error("status: the daemon's status is not a JSON object");
    return reply;
}

// The daemon's side: every change goes through the pipeline, which keeps its in-memory
// silences and alert states in step with the store.
class PipelineControl final : public ControlTarget {
public:
    explicit PipelineControl(Pipeline& pipeline) : pipeline_(pipeline) {}
    std::int64_t add_silence(Silence silence, TimePoint now) override {
        return pipeline_.add_silence(std::move(silence), now);
    }
    std::vector<Silence> silences(TimePoint now, bool include_ended) override {
        return pipeline_.store().silences(now, include_ended);
    }
    bool expire_silence(std::int64_t id, const std::string& by, TimePoint at) override {
        return pipeline_.expire_silence(id, by, at);
    }
    Acknowledgement acknowledge(const std::string& alert_id, const std::string& by,
                                const std::string& note, TimePoint at) override {
        return pipeline_.acknowledge(alert_id, by, note, at);
    }

private:
    Pipeline& pipeline_;
};

}  // namespace

fs::path control_socket_file(const fs::path& state_dir) { return state_dir / "control.sock"; }

std::string control_endpoint(const fs::path& state_dir) {
    return "ipc://" + control_socket_file(state_dir).string();
}

std::int64_t StoreControl::add_silence(Silence silence, TimePoint now) {
    // The locality table is read only when the silence names a locality.
    std::optional<std::set<std::string, std::less<>>> known;
    validate_silence(silence, now, [&](std::string_view id) {
        if (!known) {
            known.emplace();
            for (auto& l : store_.localities()) known->insert(std::move(l.id));
        }
        return known->contains(id);
    });
    silence.created = now;
    silence.expired.reset();
    silence.expired_by.clear();
    return store_.add_silence(silence);
}

std::vector<Silence> StoreControl::silences(TimePoint now, bool include_ended) {
    return store_.silences(now, include_ended);
}

// The checks below are Pipeline's, so that a request gets the same answer with and without
// a daemon.
bool StoreControl::expire_silence(std::int64_t id, const std::string& by, TimePoint at) {
    if (by.empty()) throw std::invalid_argument("by: give who expires the silence");
    return store_.expire_silence(id, by, at);
}

Acknowledgement StoreControl::acknowledge(const std::string& alert_id, const std::string& by,
                                          const std::string& note, TimePoint at) {
    validate_acknowledgement(by, note);
    for (auto& state : store_.alert_states()) {
        // An alert is open while the scores say so (alert_id) or while subscribers were told
        // of it and not yet of its end (notified_id, e.g. under a silence).
        if (alert_id != state.alert_id && alert_id != state.notified_id) continue;
        if (!ews::acknowledge(state, alert_id, by, at)) continue;
        Acknowledgement a{alert_id, state.locality, by, note, at};
        store_.commit_acknowledgement(state, a);
        return a;
    }
    throw std::invalid_argument("alert_id: no open alert '" + alert_id + "'");
}

Json silence_json(const Silence& s, TimePoint now) {
    Json j;
    j["id"] = s.id;
    if (!s.locality.empty()) j["locality"] = s.locality;
    if (!s.region.empty()) j["region"] = s.region;
    j["until"] = format_time(s.until);
    j["reason"] = s.reason;
    j["by"] = s.by;
    j["created"] = format_time(s.created);
    j["expired"] = s.expired ? Json(format_time(*s.expired)) : Json(nullptr);
    j["expired_by"] = s.expired_by;
    j["held"] = s.held;
    j["active"] = s.active(now);
    return j;
}

std::string answer_control(const std::string& request, ControlTarget& target, TimePoint now,
                           const std::function<std::string()>& status) {
    try {
        Json parsed;
        try {
            parsed = Json::parse(request);
        } catch (const nlohmann::json::parse_error& e) {
            // e.byte counts the offending byte from 1; clients get the 0-based offset.
            return error_reply("malformed request: " + parse_reason(e) + " at byte " +
                               std::to_string(e.byte > 0 ? e.byte - 1 : 0));
        }
        if (!parsed.is_object())
            return error_reply("request must be a JSON object such as {\"op\":\"status\"}, got " +
                               std::string(parsed.type_name()));
        if (!parsed.contains("op")) return error_reply(std::string("op: missing (") + known_ops + ")");
        const Json& op = parsed.at("op");
        if (!op.is_string()) return error_reply("op: must be a string, got " + quoted_value(op));
        const auto& name = op.get_ref<const std::string&>();
        if (name == "silence_add") return json_text(silence_add(parsed, target, now));
        if (name == "silence_list") return json_text(silence_list(parsed, target, now));
        if (name == "silence_expire") return json_text(silence_expire(parsed, target, now));
        if (name == "ack") return json_text(ack(parsed, target, now));
        if (name == "status") return json_text(status_reply(parsed, status));
        return error_reply("op: unknown " + json_text(op) + " (expected " + known_ops + ")");
    } catch (const RequestError& e) {
        return error_reply(e.what);
    } catch (const std::invalid_argument& e) {
        return error_reply(e.what());  // refused by validate_silence or the pipeline
    } catch (const std::exception& e) {
        return error_reply(std::string("server error: ") + e.what());
    } catch (...) {
        return error_reply("server error");
    }
}

std::string answer_control(const std::string& request, Pipeline& pipeline, TimePoint now,
                           const std::function<std::string()>& status) {
    PipelineControl target(pipeline);
    return answer_control(request, target, now, status);
}

ControlServer::ControlServer(zmq::context_t& context, const fs::path& state_dir)
    : file_(control_socket_file(state_dir)), socket_(context, zmq::socket_type::router) {
    const std::string endpoint = control_endpoint(state_dir);
    // A Unix socket's path must fit sockaddr_un::sun_path with its terminating NUL.
    if (file_.string().size() >= sizeof(sockaddr_un{}.sun_path))
        throw std::runtime_error(file_.string() + ": cannot bind the control socket: the path is " +
                                 std::to_string(file_.string().size()) + " bytes, longer than the " +
                                 std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                                 " a Unix socket allows (choose a shorter state_dir)");
    socket_.set(zmq::sockopt::maxmsgsize, max_control_request_bytes);
    socket_.set(zmq::sockopt::linger, 0);
    try {
        // libzmq unlinks a file left at this path before binding: a daemon that was killed
        // leaves its socket file behind, and only one daemon holds the state lock.
        socket_.bind(endpoint);
    } catch (const zmq::error_t& e) {
        throw std::runtime_error(file_.string() + ": cannot bind the control socket: " + e.what());
    }
    std::error_code ec;
    fs::permissions(file_,
                    fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                        fs::perms::group_write,
                    fs::perm_options::replace, ec);
    if (ec)
        throw std::runtime_error(file_.string() + ": cannot set the control socket's mode to 0660: " +
                                 ec.message());
}

ControlServer::~ControlServer() {
    socket_.close();
    std::error_code ec;
    fs::remove(file_, ec);  // libzmq removes it too, from its I/O thread; whichever is first
}

void ControlServer::handle(Pipeline& pipeline, TimePoint now,
                           const std::function<std::string()>& status) {
    serve_one_request(socket_, [&](const std::string& request) {
        return answer_control(request, pipeline, now, status);
    });
}

}  // namespace ews
