// Streams over real loopback sockets.
#include <corio/server.hpp>
#include <corio/streams.hpp>
#include <corio/testing.hpp>

using namespace corio;
using namespace std::chrono_literals;

namespace {
Coro<> echo_handler(StreamReader reader, StreamWriter writer) {
    for (;;) {
        std::string data = co_await reader.read(65536);
        if (data.empty()) break;
        writer.write(data);
        co_await writer.drain();
    }
}

Coro<> line_handler(StreamReader reader, StreamWriter writer) {
    while (true) {
        std::string line = co_await reader.readline();
        if (line.empty()) break;
        writer.write("echo: " + line);
        co_await writer.drain();
    }
}
}  // namespace

CORIO_TEST(Streams, EchoRoundTripOverLoopback) {
    Server server = co_await start_server(echo_handler, "127.0.0.1", 0);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    EXPECT_NE(port, 0);
    auto [reader, writer] = co_await open_connection("127.0.0.1", port);
    writer.write("hello\n");
    co_await writer.drain();
    std::string line = co_await reader.readline();
    EXPECT_EQ(line, "hello\n");
    auto peer = writer.get_extra_info("peername");
    EXPECT_TRUE(peer.has_value());
    EXPECT_EQ(peer->port(), port);
    writer.close();
    co_await writer.wait_closed();
    server.close();
    co_await server.wait_closed();
}

CORIO_TEST(Streams, LargePayloadWithBackpressure) {
    Server server = co_await start_server(echo_handler, "127.0.0.1", 0);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    auto [reader, writer] = co_await open_connection("127.0.0.1", port);
    std::string payload(8 * 1024 * 1024, 'x');
    for (std::size_t i = 0; i < payload.size(); i += 4096) payload[i] = char('a' + (i / 4096) % 26);
    auto sending = [&]() -> Coro<> {
        writer.write(payload);
        co_await writer.drain();
        writer.write_eof();
    };
    Coro<> send_all = sending();
    auto sender = create_task(std::move(send_all));
    std::string got = co_await reader.read(-1);
    co_await sender;
    EXPECT_EQ(got.size(), payload.size());
    EXPECT_TRUE(got == payload);
    writer.close();
    server.close();
    co_await server.wait_closed();
}

CORIO_TEST(Streams, ReadlineReadexactlyReaduntil) {
    Server server = co_await start_server(line_handler, "127.0.0.1", 0);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    auto [reader, writer] = co_await open_connection("127.0.0.1", port);
    writer.write("one\ntwo\n");
    std::string a = co_await reader.readline();
    std::string b = co_await reader.readexactly(5);
    std::string c = co_await reader.readuntil("\n");
    EXPECT_EQ(a, "echo: one\n");
    EXPECT_EQ(b, "echo:");
    EXPECT_EQ(c, " two\n");
    writer.write_eof();
    std::string rest = co_await reader.read(-1);
    EXPECT_EQ(rest, "");
    EXPECT_TRUE(reader.at_eof());
    bool incomplete = false;
    try {
        co_await reader.readexactly(3);
    } catch (const IncompleteReadError& e) {
        incomplete = true;
        EXPECT_EQ(e.partial, "");
        EXPECT_EQ(e.expected, 3u);
    }
    EXPECT_TRUE(incomplete);
    writer.close();
    server.close();
    co_await server.wait_closed();
}

CORIO_TEST(Streams, ConnectionRefusedIsASystemError) {
    // Bind a port, close it, then connect: nobody listens there.
    auto s = Socket::create(AF_INET, SOCK_STREAM);
    s.bind(SocketAddress("127.0.0.1", 0));
    std::uint16_t port = s.getsockname().port();
    s.close();
    bool refused = false;
    try {
        co_await open_connection("127.0.0.1", port);
    } catch (const std::system_error& e) {
        refused = e.code().value() == ECONNREFUSED;
    }
    EXPECT_TRUE(refused);
}

CORIO_TEST(Streams, CancelledReadLosesNoBytes) {
    // Virtual time: each timeout fires as soon as the loop has nothing else to do, i.e. once
    // every byte in flight on loopback has been delivered.
    corio::testing::MockClock clock;
    Server server = co_await start_server(echo_handler, "127.0.0.1", 0);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    auto [reader, writer] = co_await open_connection("127.0.0.1", port);
    bool timed_out = false;
    try {
        co_await wait_for(reader.readline(), 50ms);
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    writer.write("partial");
    try {
        co_await wait_for(reader.readline(), 20ms);
    } catch (const TimeoutError&) {
    }
    writer.write(" line\n");
    std::string line = co_await reader.readline();
    EXPECT_EQ(line, "partial line\n");
    writer.close();
    server.close();
    co_await server.wait_closed();
}

#include <corio/datagram.hpp>

CORIO_TEST(Datagram, UdpEchoOverLoopback) {
    auto server = co_await create_datagram_endpoint({.local_addr = {"127.0.0.1", 0}});
    auto client = co_await create_datagram_endpoint({.remote_addr = server.getsockname()});
    co_await client.send("ping");
    auto [data, from] = co_await server.recvfrom();
    EXPECT_EQ(data, "ping");
    co_await server.sendto("pong:" + data, from);
    auto [reply, replier] = co_await client.recvfrom();
    EXPECT_EQ(reply, "pong:ping");
    EXPECT_EQ(replier.port(), server.getsockname().port());
}

CORIO_TEST(UnixStreams, EchoOverAUnixSocket) {
    std::string path = "/tmp/corio-test-" + std::to_string(::getpid()) + ".sock";
    Server server = co_await start_unix_server(echo_handler, path);
    auto [reader, writer] = co_await open_unix_connection(path);
    writer.write("over unix\n");
    EXPECT_EQ(co_await reader.readline(), "over unix\n");
    writer.close();
    co_await writer.wait_closed();
    co_await server.aclose();
}
