// Streams over real loopback sockets (127.0.0.1, ::1 and Unix sockets in /tmp only): round
// trips and StreamReader. The writer, the server, cancellation, read_into and streams across
// loops have suites of their own (test_stream_*.cpp, test_server.cpp).
#include <corio/datagram.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include <corio/testing.hpp>

#include "stream_support.hpp"

using namespace corio;
using namespace corio_test;
using namespace std::chrono_literals;

// --------------------------------------------------------------------------------------------
// Round trips (the original tests)

CORIO_TEST(Streams, EchoRoundTripOverLoopback) {
    Server server = co_await serve_local(echo_handler);
    std::uint16_t port = port_of(server);
    EXPECT_NE(port, 0);
    StreamPair conn = co_await connect_local(port);
    auto& [reader, writer] = conn;
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
    Server server = co_await serve_local(echo_handler);
    StreamPair conn = co_await connect_local(port_of(server));
    auto& [reader, writer] = conn;
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
    Server server = co_await serve_local(line_handler);
    StreamPair conn = co_await connect_local(port_of(server));
    auto& [reader, writer] = conn;
    writer.write("one\ntwo\n");
    std::string a = co_await reader.readline();
    std::string b = co_await reader.readexactly(5);
    Coro<std::string> until = reader.readuntil("\n");
    std::string c = co_await std::move(until);
    EXPECT_EQ(a, "echo: one\n");
    EXPECT_EQ(b, "echo:");
    EXPECT_EQ(c, " two\n");
    writer.write_eof();
    std::string rest = co_await reader.read(-1);
    EXPECT_EQ(rest, "");
    EXPECT_TRUE(reader.at_eof());
    CO_CATCH(IncompleteReadError, incomplete, reader.readexactly(3));
    EXPECT_TRUE(incomplete.has_value());
    if (incomplete) {
        EXPECT_EQ(incomplete->partial, "");
        EXPECT_EQ(incomplete->expected, 3u);
    }
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
    CO_CATCH(std::system_error, refused, open_connection("127.0.0.1", port));
    EXPECT_TRUE(refused.has_value());
    if (refused) {
        EXPECT_EQ(refused->code().value(), ECONNREFUSED);
    }
}

// --------------------------------------------------------------------------------------------
// StreamReader

CORIO_TEST(StreamReader, ReadNReturnsWhatIsThereReadZeroReturnsNothing) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    auto& peer = link.server.second;
    // read(n) waits until some data arrives, then returns at most n bytes.
    Coro<std::string> first = reader.read(5);
    Task<std::string> waiting = create_task(std::move(first));
    co_await sleep(0ms);
    co_await sleep(0ms);
    EXPECT_FALSE(waiting.done());
    peer.write("hello world");
    std::string got = co_await waiting;
    EXPECT_EQ(got, "hello");
    // read(0) returns "" at once and consumes nothing.
    std::string none = co_await reader.read(0);
    EXPECT_EQ(none, "");
    std::string more = co_await reader.read(100);
    EXPECT_EQ(more, " world");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, ReadMinusOneReadsToEofThenEmpty) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    auto& peer = link.server.second;
    peer.write("abc");
    peer.write("def\n");
    peer.write("ghi");
    peer.write_eof();
    std::string all = co_await reader.read(-1);
    EXPECT_EQ(all, "abcdef\nghi");
    EXPECT_TRUE(reader.at_eof());
    std::string after = co_await reader.read(-1);
    EXPECT_EQ(after, "");
    std::string after_n = co_await reader.read(10);
    EXPECT_EQ(after_n, "");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, ReadlineAtEofReturnsThePartialLine) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    auto& peer = link.server.second;
    peer.write("first\nsecond\nno newline");
    peer.write_eof();
    std::string a = co_await reader.readline();
    std::string b = co_await reader.readline();
    EXPECT_FALSE(reader.at_eof());
    std::string c = co_await reader.readline();
    std::string d = co_await reader.readline();
    EXPECT_EQ(a, "first\n");
    EXPECT_EQ(b, "second\n");
    EXPECT_EQ(c, "no newline");
    EXPECT_EQ(d, "");
    EXPECT_TRUE(reader.at_eof());
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, ReaduntilMultiByteSeparatorAcrossWrites) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    auto& peer = link.server.second;
    Coro<std::string> until = reader.readuntil("\r\n\r\n");
    Task<std::string> waiting = create_task(std::move(until));
    peer.write("GET / HTTP/1.0\r\nHost: x\r");
    co_await sleep(0ms);
    co_await sleep(0ms);
    peer.write("\n\r");
    co_await sleep(0ms);
    co_await sleep(0ms);
    EXPECT_FALSE(waiting.done());
    peer.write("\nbody");
    std::string head = co_await waiting;
    EXPECT_EQ(head, "GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    std::string body = co_await reader.read(100);
    EXPECT_EQ(body, "body");
    CO_CATCH(std::invalid_argument, empty_sep, reader.readuntil(""));
    EXPECT_TRUE(empty_sep.has_value());
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, ReaduntilAtEofIsIncompleteAndConsumesTheBuffer) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    link.server.second.write("no separator here");
    link.server.second.write_eof();
    CO_CATCH(IncompleteReadError, incomplete, reader.readuntil("\n"));
    CO_ASSERT_TRUE(incomplete.has_value());
    EXPECT_EQ(incomplete->partial, "no separator here");
    EXPECT_FALSE(incomplete->expected.has_value());
    EXPECT_STREQ(incomplete->what(), "17 bytes read on a total of None expected bytes");  // asyncio's words
    std::string rest = co_await reader.read(-1);
    EXPECT_EQ(rest, "");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, ReaduntilLimitOverrunLeavesTheBufferIntact) {
    StreamLink link = co_await stream_link(/*client_limit=*/16);
    auto& reader = link.client.first;
    auto& peer = link.server.second;
    EXPECT_EQ(reader.limit(), 16u);
    // No separator within the limit: "not found", nothing consumed.
    std::string long_chunk(40, 'x');
    peer.write(long_chunk);
    CO_CATCH(LimitOverrunError, not_found, reader.readuntil("\n"));
    CO_ASSERT_TRUE(not_found.has_value());
    EXPECT_NE(std::string(not_found->what()).find("not found"), std::string::npos) << not_found->what();
    // The buffer is intact: the same bytes can still be read.
    std::string again = co_await reader.readexactly(40);
    EXPECT_EQ(again, long_chunk);

    // A separator beyond the limit: "is found", nothing consumed either.
    std::string long_line = std::string(20, 'y') + "\n";
    peer.write(long_line);
    CO_CATCH(LimitOverrunError, found, reader.readuntil("\n"));
    CO_ASSERT_TRUE(found.has_value());
    EXPECT_NE(std::string(found->what()).find("is found"), std::string::npos) << found->what();
    std::string whole = co_await reader.readexactly(long_line.size());
    EXPECT_EQ(whole, long_line);
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, ReaduntilAcceptsAChunkOfExactlyTheLimit) {
    // asyncio: LimitOverrunError only when the separator *starts* past the limit
    // (match_start > limit), so limit bytes plus the separator is still a valid chunk.
    StreamLink link = co_await stream_link(/*client_limit=*/16);
    auto& reader = link.client.first;
    std::string line = std::string(16, 'z') + "\n";
    link.server.second.write(line);
    std::optional<std::string> got;
    auto read_chunk = [&]() -> Coro<> {
        Coro<std::string> until = reader.readuntil("\n");
        got = co_await std::move(until);
    };
    CO_CATCH(LimitOverrunError, overrun, read_chunk());
    // asyncio returns them: it raises only when the separator starts beyond the limit.
    EXPECT_FALSE(overrun.has_value());
    EXPECT_EQ(got, line);
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, ReadlineDropsTheOverlongLine) {
    StreamLink link = co_await stream_link(/*client_limit=*/16);
    auto& reader = link.client.first;
    auto& peer = link.server.second;
    // With a separator: the overlong line goes, up to and including its "\n".
    peer.write(std::string(30, 'x') + "\nnext\n");
    CO_CATCH(LimitOverrunError, with_sep, reader.readline());
    EXPECT_TRUE(with_sep.has_value());
    std::string next = co_await reader.readline();
    EXPECT_EQ(next, "next\n");
    // Without a separator: everything buffered goes.
    peer.write(std::string(40, 'y'));
    CO_CATCH(LimitOverrunError, without_sep, reader.readline());
    EXPECT_TRUE(without_sep.has_value());
    peer.write("ok\n");
    std::string ok = co_await reader.readline();
    EXPECT_EQ(ok, "ok\n");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, ReadexactlyAtEofReportsPartialAndExpected) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    std::string zero = co_await reader.readexactly(0);
    EXPECT_EQ(zero, "");
    link.server.second.write("abc");
    link.server.second.write_eof();
    CO_CATCH(IncompleteReadError, incomplete, reader.readexactly(10));
    CO_ASSERT_TRUE(incomplete.has_value());
    EXPECT_EQ(incomplete->partial, "abc");
    EXPECT_EQ(incomplete->expected, 10u);
    EXPECT_STREQ(incomplete->what(), "3 bytes read on a total of 10 expected bytes");
    EXPECT_TRUE(reader.at_eof());
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, ReadexactlyWaitsForEveryByte) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    auto& peer = link.server.second;
    Coro<std::string> exact = reader.readexactly(6);
    Task<std::string> waiting = create_task(std::move(exact));
    for (char c : std::string("abcdef")) {
        co_await sleep(0ms);
        EXPECT_FALSE(waiting.done());
        peer.write(std::string_view(&c, 1));
    }
    std::string got = co_await waiting;
    EXPECT_EQ(got, "abcdef");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, SecondConcurrentReaderIsRefused) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    Coro<std::string> first = reader.readline();
    Task<std::string> one = create_task(std::move(first));
    co_await sleep(0ms);
    CO_CATCH(std::logic_error, refused, reader.readline());
    EXPECT_TRUE(refused.has_value());
    link.server.second.write("line\n");
    std::string got = co_await one;
    EXPECT_EQ(got, "line\n");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

// asyncio lets a read take what is buffered while another read waits for more. The waiting
// read's bytes land in the buffer's free room: taking every buffered byte must not move the
// buffer's end back under that read (it duplicated "cde" and lost "789").
CORIO_TEST(StreamReader, TakingTheBufferedBytesWhileAnotherReadWaitsLosesNothing) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    auto& peer = link.server.second;
    peer.write("abcde");
    std::string first = co_await reader.read(2);
    EXPECT_EQ(first, "ab");
    Coro<std::string> exact = reader.readexactly(10);
    Task<std::string> waiting = create_task(std::move(exact));
    co_await sleep(0ms);
    EXPECT_FALSE(waiting.done());
    std::string taken = co_await reader.read(100);
    EXPECT_EQ(taken, "cde");
    peer.write("0123456789");
    std::string got = co_await waiting;
    EXPECT_EQ(got, "0123456789");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReader, CustomLimitThroughConnectAndServerOptions) {
    std::vector<std::size_t> handler_limits;
    int overruns = 0;
    auto handler = [&](StreamReader reader, StreamWriter writer) -> Coro<> {
        handler_limits.push_back(reader.limit());
        try {
            std::string line = co_await reader.readline();
            writer.write("got " + line);
        } catch (const LimitOverrunError&) {
            ++overruns;
            writer.write("too long\n");
        }
        co_await writer.drain();
    };
    Server server = co_await serve_local(handler, ServerOptions{.limit = 8});
    ConnectOptions options{.limit = 32};
    StreamPair a = co_await connect_local(port_of(server), options);
    EXPECT_EQ(a.first.limit(), 32u);
    a.second.write("short\n");
    std::string reply_a = co_await a.first.readline();
    EXPECT_EQ(reply_a, "got short\n");
    StreamPair b = co_await connect_local(port_of(server), options);
    b.second.write("much longer than eight\n");
    std::string reply_b = co_await b.first.readline();
    EXPECT_EQ(reply_b, "too long\n");
    EXPECT_EQ(overruns, 1);
    EXPECT_EQ(handler_limits, (std::vector<std::size_t>{8, 8}));
    a.second.close();
    b.second.close();
    co_await server.aclose();
}

CORIO_TEST(Streams, Ipv6Loopback) {
    bool have_v6 = true;
    try {
        Socket probe = Socket::create(AF_INET6, SOCK_STREAM);
        probe.bind(SocketAddress("::1", 0));
    } catch (const std::system_error&) {
        have_v6 = false;
    }
    if (!have_v6) {
        skip_test("::1 is not available on this machine");
        co_return;
    }
    Coro<Server> starting = start_server(line_handler, "::1", 0);
    Server server = co_await std::move(starting);
    auto listening = server.sockets()[0].getsockname();
    EXPECT_EQ(listening.family(), AF_INET6);
    EXPECT_EQ(listening.host(), "::1");
    Coro<StreamPair> connecting = open_connection("::1", listening.port());
    StreamPair conn = co_await std::move(connecting);
    conn.second.write("over v6\n");
    std::string line = co_await conn.first.readline();
    EXPECT_EQ(line, "echo: over v6\n");
    auto peer = conn.second.get_extra_info("peername");
    CO_ASSERT_TRUE(peer.has_value());
    EXPECT_EQ(peer->to_string(), "[::1]:" + std::to_string(listening.port()));
    // The bracketed form is accepted too.
    Coro<StreamPair> connecting_bracketed = open_connection("[::1]", listening.port());
    StreamPair bracketed = co_await std::move(connecting_bracketed);
    bracketed.second.write("again\n");
    std::string again = co_await bracketed.first.readline();
    EXPECT_EQ(again, "echo: again\n");
    conn.second.close();
    bracketed.second.close();
    co_await server.aclose();
}

// --------------------------------------------------------------------------------------------
// UDP and Unix sockets through the stream API (more in test_sockets.cpp)

CORIO_TEST(Datagram, UdpEchoOverLoopback) {
    DatagramOptions server_options{.local_addr = {"127.0.0.1", 0}};
    DatagramEndpoint server = co_await create_datagram_endpoint(server_options);
    DatagramOptions client_options{.remote_addr = server.getsockname()};
    DatagramEndpoint client = co_await create_datagram_endpoint(client_options);
    Coro<> sending = client.send("ping");
    co_await std::move(sending);
    std::pair<std::string, SocketAddress> request = co_await server.recvfrom();
    EXPECT_EQ(request.first, "ping");
    Coro<> replying = server.sendto("pong:" + request.first, request.second);
    co_await std::move(replying);
    std::pair<std::string, SocketAddress> reply = co_await client.recvfrom();
    EXPECT_EQ(reply.first, "pong:ping");
    EXPECT_EQ(reply.second.port(), server.getsockname().port());
}

CORIO_TEST(UnixStreams, EchoOverAUnixSocket) {
    std::string path = "/tmp/corio-test-" + std::to_string(::getpid()) + ".sock";
    Coro<Server> starting = start_unix_server(echo_handler, path);
    Server server = co_await std::move(starting);
    Coro<StreamPair> connecting = open_unix_connection(path);
    StreamPair conn = co_await std::move(connecting);
    conn.second.write("over unix\n");
    std::string line = co_await conn.first.readline();
    EXPECT_EQ(line, "over unix\n");
    conn.second.close();
    co_await conn.second.wait_closed();
    co_await server.aclose();
}
