#include "curve.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <zmq_addon.hpp>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

using namespace ews;
namespace fs = std::filesystem;

namespace {

// A key pair made by pyzmq (zmq.curve_keypair()), so the tests read keys libzmq did not make
// in this process.
constexpr const char* py_public = "jTuRJ!$biQH//+g]]s-NndD}d*Ud01yK*/Ip)F52";
constexpr const char* py_secret = "TE9/$JT(TgLhG)Q8$$i?oBkYJo2TirN=>8peBvmf";
constexpr const char* py_public_with_equals = ".qZ&U&6(rigJ=PC2(dcvTs^5*v^3B-x=*PP5oXj(";

void write_text(const fs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::binary);
    out << text;
    REQUIRE(out.good());
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

mode_t mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no exception)";
}

// Routes spdlog's default logger into a string for one test, then puts the old one back.
class CapturedLog {
public:
    CapturedLog() : previous_(spdlog::default_logger()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
        auto logger = std::make_shared<spdlog::logger>("curve_test", sink);
        logger->set_level(spdlog::level::debug);
        spdlog::set_default_logger(logger);
    }
    ~CapturedLog() { spdlog::set_default_logger(previous_); }
    CapturedLog(const CapturedLog&) = delete;
    CapturedLog& operator=(const CapturedLog&) = delete;
    std::string text() {
        spdlog::default_logger()->flush();
        return text_.str();
    }

private:
    std::shared_ptr<spdlog::logger> previous_;
    std::ostringstream text_;
};

// Publishes on `pub` every 50 ms until `sub` receives or `wait` passes.
// Returns: whether `sub` received a message.
bool receives_within(zmq::socket_t& pub, zmq::socket_t& sub, std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
        pub.send(zmq::str_buffer("hb/"), zmq::send_flags::sndmore);
        pub.send(zmq::str_buffer("{}"), zmq::send_flags::none);
        zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) == 1) {
            std::vector<zmq::message_t> frames;
            REQUIRE(zmq::recv_multipart(sub, std::back_inserter(frames)));
            CHECK(frames.size() == 2);
            CHECK(frames[0].to_string() == "hb/");
            return true;
        }
    }
    return false;
}

zmq::socket_t subscriber(zmq::context_t& context, const std::string& endpoint, const std::string& server_public,
                         const curve::Certificate& client) {
    zmq::socket_t sub(context, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    curve::make_client(sub, server_public, client);
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(endpoint);
    return sub;
}

// Waits up to 5 s for `predicate` (the handler answers on its own thread).
bool eventually(const std::function<bool()>& predicate) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return predicate();
}

}  // namespace

TEST_CASE("generate makes a valid key pair", "[curve]") {
    const auto a = curve::generate();
    const auto b = curve::generate();
    REQUIRE(a.secret_key);
    CHECK(a.public_key.size() == curve::z85_key_length);
    CHECK(a.secret_key->size() == curve::z85_key_length);
    CHECK(a.public_key != b.public_key);
    char derived[41] = {};
    REQUIRE(zmq_curve_public(derived, a.secret_key->c_str()) == 0);
    CHECK(std::string(derived) == a.public_key);
}

TEST_CASE("key files round trip with 0600 secret, 0644 public, 0700 new directory", "[curve]") {
    testing::TempDir tmp;
    const fs::path dir = tmp.path() / "etc" / "keys";  // neither level exists yet
    const auto cert = curve::generate();
    // With umask 0 a plain open() would make 0666 files: the modes must still be exact.
    const mode_t old_umask = ::umask(0);
    curve::KeyFiles files;
    const std::string error = error_of([&] { files = curve::write_certificate(dir, "district-7", cert); });
    ::umask(old_umask);
    REQUIRE(error == "(no exception)");

    CHECK(files.public_file == dir / "district-7.key");
    CHECK(files.secret_file == dir / "district-7.key_secret");
    CHECK(mode_of(dir) == 0700);
    CHECK(mode_of(files.secret_file) == 0600);
    CHECK(mode_of(files.public_file) == 0644);

    const auto pub = curve::read_certificate(files.public_file);
    CHECK(pub.public_key == cert.public_key);
    CHECK_FALSE(pub.secret_key);
    CHECK(read_text(files.public_file).find(*cert.secret_key) == std::string::npos);

    const auto sec = curve::read_certificate(files.secret_file);
    CHECK(sec.public_key == cert.public_key);
    REQUIRE(sec.secret_key);
    CHECK(*sec.secret_key == *cert.secret_key);
    // The layout pyzmq's load_certificate reads: stripped lines starting with the key name.
    CHECK(read_text(files.secret_file).find("\ncurve\n    public-key = \"" + cert.public_key + "\"\n    secret-key = \"" +
                                            *cert.secret_key + "\"\n") != std::string::npos);
}

TEST_CASE("write_certificate refuses to overwrite and refuses bad names", "[curve]") {
    testing::TempDir tmp;
    const auto first = curve::generate();
    const auto files = curve::write_certificate(tmp.path(), "alice", first);
    const std::string before_public = read_text(files.public_file);
    const std::string before_secret = read_text(files.secret_file);

    const std::string error = error_of([&] { curve::write_certificate(tmp.path(), "alice", curve::generate()); });
    CHECK_THAT(error, Catch::Contains("alice.key") && Catch::Contains("exists"));
    CHECK(read_text(files.public_file) == before_public);
    CHECK(read_text(files.secret_file) == before_secret);

    // Only the public file exists: still refused, and no secret file is left behind.
    write_text(tmp.path() / "bob.key", std::string("curve\n    public-key = \"") + py_public + "\"\n");
    CHECK_THROWS_AS(curve::write_certificate(tmp.path(), "bob", curve::generate()), std::runtime_error);
    CHECK_FALSE(fs::exists(tmp.path() / "bob.key_secret"));

    for (const std::string bad : {"", ".hidden", "a/b", "a b", "../x", "caf\xc3\xa9"})
        CHECK_THROWS_AS(curve::write_certificate(tmp.path(), bad, curve::generate()), std::invalid_argument);
    CHECK_FALSE(fs::exists(tmp.path() / ".hidden.key_secret"));
}

TEST_CASE("read_certificate reads the format pyzmq writes", "[curve]") {
    testing::TempDir tmp;
    // Byte for byte what zmq.auth.create_certificates writes into NAME.key_secret.
    const std::string secret_text = std::string(
                                        "#   ****  Generated on 2024-05-02 10:11:12.131415 by pyzmq  ****\n"
                                        "#   ZeroMQ CURVE **Secret** Certificate\n"
                                        "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
                                        "\n"
                                        "metadata\n"
                                        "curve\n"
                                        "    public-key = \"") +
                                    py_public + "\"\n    secret-key = \"" + py_secret + "\"\n";
    write_text(tmp.path() / "server.key_secret", secret_text);
    const auto sec = curve::read_certificate(tmp.path() / "server.key_secret");
    CHECK(sec.public_key == py_public);
    REQUIRE(sec.secret_key);
    CHECK(*sec.secret_key == py_secret);

    // ...and NAME.key, with metadata written as pyzmq does (unquoted values).
    write_text(tmp.path() / "server.key", std::string("#   ZeroMQ CURVE Public Certificate\n\n"
                                                      "metadata\n    site = north\ncurve\n    public-key = \"") +
                                              py_public + "\"\n");
    const auto pub = curve::read_certificate(tmp.path() / "server.key");
    CHECK(pub.public_key == py_public);
    CHECK_FALSE(pub.secret_key);

    // A file holding only the key, and a key in single quotes with tabs and CRLF.
    write_text(tmp.path() / "bare.key", std::string(py_public) + "\n");
    CHECK(curve::read_certificate(tmp.path() / "bare.key").public_key == py_public);
    // '=' is a Z85 character: a bare key holding one is still a key, not 'name = value'.
    write_text(tmp.path() / "equals.key", std::string("# made by pyzmq\n") + py_public_with_equals + "\n");
    CHECK(curve::read_certificate(tmp.path() / "equals.key").public_key == py_public_with_equals);
    write_text(tmp.path() / "crlf.key", std::string("curve\r\n\tpublic-key\t=\t'") + py_public + "'\r\n");
    CHECK(curve::read_certificate(tmp.path() / "crlf.key").public_key == py_public);
}

TEST_CASE("malformed certificates are named FILE:LINE", "[curve]") {
    testing::TempDir tmp;
    const fs::path f = tmp.path() / "bad.key";
    const std::string w = f.string();
    auto error_for = [&](const std::string& text) {
        write_text(f, text);
        return error_of([&] { curve::read_certificate(f); });
    };

    // Line 3 holds a 5-character key.
    CHECK_THAT(error_for("# c\ncurve\n    public-key = \"short\"\n"),
               Catch::StartsWith(w + ":3: public-key: expected a 40-character Z85 key, found 5"));
    // '~' is not in the Z85 alphabet (line 2).
    CHECK_THAT(error_for("curve\n    public-key = \"" + std::string(39, 'a') + "~\"\n"),
               Catch::StartsWith(w + ":2: public-key: character '~' is not Z85"));
    CHECK_THAT(error_for("curve\n    public-key = \"" + std::string(py_public) + "\n"),
               Catch::StartsWith(w + ":2: unterminated quoted value for 'public-key'"));
    CHECK_THAT(error_for("curve\n  this is not a line\n"), Catch::StartsWith(w + ":2: expected a section name"));
    // Three lines, no key: reported at the last line.
    CHECK_THAT(error_for("# only\nmetadata\ncurve\n"), Catch::StartsWith(w + ":3: no public key"));
    CHECK_THAT(error_for(""), Catch::StartsWith(w + ":1: no public key"));
    CHECK_THAT(error_for(std::string("curve\n public-key = \"") + py_public + "\"\n public-key = \"" + py_public +
                         "\"\n"),
               Catch::StartsWith(w + ":3: public-key given twice (first at line 2)"));
    // A secret key of another pair (line 3) does not belong to this public key.
    const auto other = curve::generate();
    CHECK_THAT(error_for(std::string("curve\n public-key = \"") + py_public + "\"\n secret-key = \"" +
                         *other.secret_key + "\"\n"),
               Catch::StartsWith(w + ":3: secret-key does not belong to the public-key of line 2"));
    CHECK_THAT(error_of([&] { curve::read_certificate(tmp.path() / "missing.key"); }),
               Catch::StartsWith((tmp.path() / "missing.key").string() + ": cannot read: "));
}

TEST_CASE("load_authorized takes every NAME.key and names the skipped ones", "[curve]") {
    testing::TempDir tmp;
    const auto alice = curve::generate();
    const auto bob = curve::generate();
    write_text(tmp.path() / "alice.key", "curve\n    public-key = \"" + alice.public_key + "\"\n");
    write_text(tmp.path() / "bob.key", bob.public_key + "\n");
    write_text(tmp.path() / ".hidden.key", "curve\n    public-key = \"" + curve::generate().public_key + "\"\n");
    write_text(tmp.path() / "server.key_secret",
               "curve\n public-key = \"" + alice.public_key + "\"\n secret-key = \"" + *alice.secret_key + "\"\n");
    write_text(tmp.path() / "notes.txt", "not a key\n");
    write_text(tmp.path() / "broken.key", "curve\n    public-key = \"nope\"\n");
    write_text(tmp.path() / "copy.key", alice.public_key + "\n");  // same key as alice.key
    fs::create_directory(tmp.path() / "dir.key");

    const auto keys = curve::load_authorized(tmp.path());
    CHECK(keys.name_by_key == std::map<std::string, std::string>{{alice.public_key, "alice"}, {bob.public_key, "bob"}});
    REQUIRE(keys.problems.size() == 2);
    // Sorted by file name: broken.key, then copy.key.
    CHECK_THAT(keys.problems[0], Catch::StartsWith((tmp.path() / "broken.key").string() + ":2: public-key:"));
    CHECK_THAT(keys.problems[1], Catch::StartsWith((tmp.path() / "copy.key").string() + ":1: same public key as ") &&
                                     Catch::Contains("alice.key"));

    CHECK_THAT(error_of([&] { curve::load_authorized(tmp.path() / "absent"); }),
               Catch::StartsWith((tmp.path() / "absent").string() + ": cannot list"));
}

TEST_CASE("make_server and make_client need secret keys", "[curve]") {
    zmq::context_t context;
    zmq::socket_t socket(context, zmq::socket_type::pub);
    CHECK_THROWS_AS(curve::make_server(socket, curve::Certificate{py_public, std::nullopt}, "alerts"),
                    std::invalid_argument);
    zmq::socket_t client(context, zmq::socket_type::sub);
    CHECK_THROWS_AS(curve::make_client(client, py_public, curve::Certificate{py_public, std::nullopt}),
                    std::invalid_argument);
}

TEST_CASE("ZAP handler admits authorized keys only, over TCP, and sees key changes", "[curve]") {
    testing::TempDir tmp;
    const fs::path authorized = tmp.path() / "authorized";
    const fs::path secrets = tmp.path() / "secrets";
    const auto server = curve::generate();
    const auto alice = curve::generate();
    const auto mallory = curve::generate();
    const auto carol = curve::generate();
    fs::create_directory(authorized);
    const auto alice_files = curve::write_certificate(secrets, "alice", alice);
    fs::copy_file(alice_files.public_file, authorized / "alice.key");

    CapturedLog log;
    zmq::context_t context;
    curve::ZapHandler zap(context, {{"alerts", authorized}});
    CHECK_THROWS_AS((curve::ZapHandler(context, {{"alerts", authorized}})), zmq::error_t);  // one per context
    CHECK(zap.counts().at("alerts").admitted == 0);

    zmq::socket_t pub(context, zmq::socket_type::pub);
    pub.set(zmq::sockopt::linger, 0);
    curve::make_server(pub, server, "alerts");
    pub.bind("tcp://127.0.0.1:*");
    const std::string endpoint = pub.get(zmq::sockopt::last_endpoint);

    SECTION("an authorized key receives, an unknown key and a plain client receive nothing") {
        auto good = subscriber(context, endpoint, server.public_key, alice);
        CHECK(receives_within(pub, good, std::chrono::seconds(5)));
        CHECK(zap.counts().at("alerts").admitted == 1);

        auto bad = subscriber(context, endpoint, server.public_key, mallory);
        CHECK_FALSE(receives_within(pub, bad, std::chrono::seconds(1)));
        CHECK(eventually([&] { return zap.counts().at("alerts").refused >= 1; }));
        CHECK(zap.counts().at("alerts").admitted == 1);

        zmq::socket_t plain(context, zmq::socket_type::sub);
        plain.set(zmq::sockopt::linger, 0);
        plain.set(zmq::sockopt::subscribe, "");
        plain.connect(endpoint);
        CHECK_FALSE(receives_within(pub, plain, std::chrono::seconds(1)));

        const std::string text = log.text();
        CHECK_THAT(text, Catch::Contains("curve: domain alerts: admitted alice from 127.0.0.1"));
        CHECK_THAT(text, Catch::Contains("curve: domain alerts: refused key " + mallory.public_key +
                                         " from 127.0.0.1: key not in " + authorized.string()));
    }

    SECTION("a key file added while running is admitted on the next connection, a removed one refused") {
        auto before = subscriber(context, endpoint, server.public_key, carol);
        CHECK_FALSE(receives_within(pub, before, std::chrono::seconds(1)));
        CHECK(eventually([&] { return zap.counts().at("alerts").refused >= 1; }));
        before.close();

        const auto carol_files = curve::write_certificate(secrets, "carol", carol);
        fs::copy_file(carol_files.public_file, authorized / "carol.key");
        auto after = subscriber(context, endpoint, server.public_key, carol);
        CHECK(receives_within(pub, after, std::chrono::seconds(5)));
        CHECK_THAT(log.text(), Catch::Contains("admitted carol from"));

        fs::remove(authorized / "alice.key");
        const auto refused_before = zap.counts().at("alerts").refused;
        auto revoked = subscriber(context, endpoint, server.public_key, alice);
        CHECK_FALSE(receives_within(pub, revoked, std::chrono::seconds(1)));
        CHECK(eventually([&] { return zap.counts().at("alerts").refused > refused_before; }));
        CHECK(zap.counts().at("alerts").admitted == 1);  // carol only
    }

    SECTION("a socket whose domain the handler does not know admits nobody; set_domains adds it") {
        zmq::socket_t other(context, zmq::socket_type::pub);
        other.set(zmq::sockopt::linger, 0);
        curve::make_server(other, server, "query");
        other.bind("tcp://127.0.0.1:*");
        const std::string other_endpoint = other.get(zmq::sockopt::last_endpoint);

        auto first = subscriber(context, other_endpoint, server.public_key, alice);
        CHECK_FALSE(receives_within(other, first, std::chrono::seconds(1)));
        CHECK(eventually([&] { return zap.counts()["query"].refused >= 1; }));
        CHECK_THAT(log.text(), Catch::Contains("curve: domain query: refused key " + alice.public_key) &&
                                   Catch::Contains("unknown domain"));
        first.close();

        zap.set_domains({{"alerts", authorized}, {"query", authorized}});
        auto second = subscriber(context, other_endpoint, server.public_key, alice);
        CHECK(receives_within(other, second, std::chrono::seconds(5)));
        CHECK(zap.counts().at("query").admitted == 1);

        CHECK_THROWS_AS((zap.set_domains({{"alerts", tmp.path() / "absent"}})), std::runtime_error);
        auto third = subscriber(context, endpoint, server.public_key, alice);  // old table kept
        CHECK(receives_within(pub, third, std::chrono::seconds(5)));
    }
}

TEST_CASE("ZAP handler logs repeats of one outcome once a minute", "[curve]") {
    testing::TempDir tmp;
    const auto server = curve::generate();
    const auto mallory = curve::generate();
    CapturedLog log;
    zmq::context_t context;
    curve::ZapHandler zap(context, {{"alerts", tmp.path()}});
    zmq::socket_t pub(context, zmq::socket_type::pub);
    pub.set(zmq::sockopt::linger, 0);
    curve::make_server(pub, server, "alerts");
    pub.bind("tcp://127.0.0.1:*");
    const std::string endpoint = pub.get(zmq::sockopt::last_endpoint);

    // Three separate connections with the same unknown key: three refusals, one log line.
    for (std::uint64_t i = 1; i <= 3; ++i) {
        auto sub = subscriber(context, endpoint, server.public_key, mallory);
        CHECK(eventually([&] { return zap.counts().at("alerts").refused >= i; }));
    }
    const std::string text = log.text();
    const std::string line = "refused key " + mallory.public_key;
    const auto first = text.find(line);
    REQUIRE(first != std::string::npos);
    CHECK(text.find(line, first + 1) == std::string::npos);
}
