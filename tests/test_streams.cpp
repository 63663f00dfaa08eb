// Streams over real loopback sockets (127.0.0.1, ::1 and Unix sockets in /tmp only):
// StreamReader / StreamWriter, Server, cancellation and timeouts of stream I/O.
#include <corio/contextlib.hpp>
#include <corio/datagram.hpp>
#include <corio/server.hpp>
#include <corio/streams.hpp>
#include <corio/testing.hpp>

#include "net_support.hpp"

#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

// Awaits `...` (bound to a named local first) and keeps a copy of the E it throws in `var`.
#define CO_CATCH(E, var, ...)                        \
    std::optional<E> var;                            \
    {                                                \
        auto corio_op_ = (__VA_ARGS__);              \
        try {                                        \
            (void)(co_await std::move(corio_op_));   \
        } catch (const E& corio_e_) {                \
            var.emplace(corio_e_);                   \
        }                                            \
    }

namespace {

int open_fds() {
    int n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

// A few loop ticks (never a real sleep): lets finished tasks release what they hold.
Coro<> settle() {
    for (int i = 0; i < 10; ++i) co_await sleep(0ms);
}

void skip_test(const std::string& why) { GTEST_SKIP() << why; }

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

std::uint16_t port_of(const Server& s) { return s.sockets()[0].getsockname().port(); }

// Plain functions (not coroutines) that build the Coro: the temporaries they need (the host
// string, the std::function) live and die inside the call, never inside a co_await operand.
template <class H>
Coro<Server> serve_local(const H& handler, ServerOptions options = {}) {
    return start_server(handler, "127.0.0.1", 0, options);
}
Coro<StreamPair> connect_local(std::uint16_t port, ConnectOptions options = {}) {
    return open_connection("127.0.0.1", port, options);
}

// Both ends of one loopback TCP connection as streams: `client` from open_connection, `server`
// from the accepted socket. No handler in between, so the test drives both sides directly.
struct StreamLink {
    StreamPair client;
    StreamPair server;
};

Coro<StreamLink> stream_link(std::size_t client_limit = default_stream_limit,
                             std::size_t server_limit = default_stream_limit) {
    Socket listener = Socket::create(AF_INET, SOCK_STREAM);
    listener.bind(SocketAddress("127.0.0.1", 0));
    listener.listen();
    std::uint16_t port = listener.getsockname().port();
    Coro<StreamPair> connecting = open_connection("127.0.0.1", port, ConnectOptions{.limit = client_limit});
    StreamPair client = co_await std::move(connecting);
    Coro<std::pair<Socket, SocketAddress>> accepting = sock_accept(listener);
    std::pair<Socket, SocketAddress> accepted = co_await std::move(accepting);
    StreamLink link{std::move(client), make_streams(std::move(accepted.first), server_limit)};
    co_return link;
}

Coro<> close_link(StreamLink link) {
    link.client.second.close();
    link.server.second.close();
    Coro<> a = link.client.second.wait_closed();
    co_await std::move(a);
    Coro<> b = link.server.second.wait_closed();
    co_await std::move(b);
}

}  // namespace

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

// --------------------------------------------------------------------------------------------
// StreamWriter

CORIO_TEST(StreamWriter, WriteEofHalfClosesAndThePeerCanStillAnswer) {
    StreamLink link = co_await stream_link();
    auto& [reader, writer] = link.client;
    auto& [peer_reader, peer_writer] = link.server;
    EXPECT_TRUE(writer.can_write_eof());
    writer.write("request");
    writer.write_eof();
    // The peer sees the request then EOF.
    std::string request = co_await peer_reader.read(-1);
    EXPECT_EQ(request, "request");
    EXPECT_TRUE(peer_reader.at_eof());
    // Our side may not write any more...
    bool refused = false;
    try {
        writer.write("more");
    } catch (const std::logic_error&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
    // ...but still reads what the peer sends back.
    peer_writer.write("response");
    co_await peer_writer.drain();
    peer_writer.close();
    std::string response = co_await reader.read(-1);
    EXPECT_EQ(response, "response");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamWriter, WritelinesSendsEveryLineInOrder) {
    StreamLink link = co_await stream_link();
    std::vector<std::string> lines{"alpha\n", "beta\n", "", "gamma\n"};
    link.client.second.writelines(lines);
    co_await link.client.second.drain();
    link.client.second.write_eof();
    std::string all = co_await link.server.first.read(-1);
    EXPECT_EQ(all, "alpha\nbeta\ngamma\n");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamWriter, DrainWaitsAboveHighWaterAndResumesWhenThePeerReads) {
    // Small kernel buffers on both ends, so the writer's own buffer fills soon.
    Socket listener = Socket::create(AF_INET, SOCK_STREAM);
    listener.set_option(SOL_SOCKET, SO_RCVBUF, 8192);
    listener.bind(SocketAddress("127.0.0.1", 0));
    listener.listen();
    Socket client = Socket::create(AF_INET, SOCK_STREAM);
    client.set_option(SOL_SOCKET, SO_SNDBUF, 8192);
    co_await sock_connect(client, listener.getsockname());
    std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
    Socket peer = std::move(accepted.first);  // the paused reader: reads nothing until told
    StreamPair streams = make_streams(std::move(client));
    auto& writer = streams.second;

    constexpr std::size_t high = 64 * 1024, low = 16 * 1024;
    writer.set_write_buffer_limits(high, low);
    std::string chunk(16 * 1024, '\0');
    for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = char('A' + i % 23);
    std::size_t written = 0;
    while (writer.get_write_buffer_size() <= high && written < 64 * 1024 * 1024) {
        writer.write(chunk);
        written += chunk.size();
    }
    CO_ASSERT_TRUE(writer.get_write_buffer_size() > high);

    Coro<> draining_coro = writer.drain();
    Task<> draining = create_task(std::move(draining_coro));
    for (int i = 0; i < 10; ++i) co_await sleep(0ms);
    EXPECT_FALSE(draining.done()) << "drain() returned while " << writer.get_write_buffer_size() << " bytes are buffered";
    EXPECT_GT(writer.get_write_buffer_size(), high);

    // The peer reads: drain() resumes once the buffer is down to the low water mark, before
    // the peer has read everything.
    std::size_t got = 0;
    std::optional<std::size_t> got_when_resumed;
    bool intact = true;
    while (got < written) {
        Coro<std::string> receiving = sock_recv(peer, 4096);
        std::string data = co_await std::move(receiving);
        CO_ASSERT_FALSE(data.empty());
        for (std::size_t i = 0; i < data.size(); ++i)
            if (data[i] != char('A' + ((got + i) % chunk.size()) % 23)) intact = false;
        got += data.size();
        if (draining.done() && !got_when_resumed) got_when_resumed = got;
    }
    co_await draining;
    EXPECT_TRUE(intact);
    EXPECT_EQ(got, written);
    CO_ASSERT_TRUE(got_when_resumed.has_value());
    EXPECT_LT(*got_when_resumed, written);
    EXPECT_EQ(writer.get_write_buffer_size(), 0u);
    writer.close();
    co_await writer.wait_closed();
}

CORIO_TEST(StreamWriter, GetExtraInfoPeernameAndSockname) {
    StreamLink link = co_await stream_link();
    auto client_peer = link.client.second.get_extra_info("peername");
    auto client_sock = link.client.second.get_extra_info("sockname");
    auto server_peer = link.server.second.get_extra_info("peername");
    auto server_sock = link.server.second.get_extra_info("sockname");
    CO_ASSERT_TRUE(client_peer && client_sock && server_peer && server_sock);
    EXPECT_EQ(client_peer->host(), "127.0.0.1");
    EXPECT_EQ(*client_peer, *server_sock);
    EXPECT_EQ(*client_sock, *server_peer);
    EXPECT_NE(client_sock->port(), 0);
    EXPECT_EQ(client_peer->to_string(), "127.0.0.1:" + std::to_string(client_peer->port()));
    EXPECT_FALSE(link.client.second.get_extra_info("no such key").has_value());
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
    // A closed writer has no socket left to ask.
    EXPECT_FALSE(link.client.second.get_extra_info("peername").has_value());
}

CORIO_TEST(StreamWriter, CloseFlushesWhatIsBufferedFirst) {
    StreamLink link = co_await stream_link();
    std::string big(4 * 1024 * 1024, 'q');
    link.client.second.write(big);
    link.client.second.close();
    EXPECT_TRUE(link.client.second.is_closing());
    std::string got = co_await link.server.first.read(-1);
    EXPECT_EQ(got.size(), big.size());
    co_await link.client.second.wait_closed();
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
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
// Server

CORIO_TEST(Server, PortZeroSocketsAndClose) {
    Server server = co_await serve_local(echo_handler);
    EXPECT_TRUE(server.is_serving());
    CO_ASSERT_EQ(server.sockets().size(), 1u);
    SocketAddress address = server.sockets()[0].getsockname();
    EXPECT_EQ(address.host(), "127.0.0.1");
    EXPECT_NE(address.port(), 0);
    server.close();
    EXPECT_FALSE(server.is_serving());
    EXPECT_TRUE(server.sockets().empty());
    co_await server.wait_closed();
    CO_CATCH(std::system_error, refused, open_connection("127.0.0.1", address.port()));
    CO_ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->code().value(), ECONNREFUSED);
    server.close();  // idempotent
    co_await server.wait_closed();
}

CORIO_TEST(Server, WaitClosedWaitsForRunningHandlers) {
    Event started, may_finish;
    bool finished = false;
    auto handler = [&](StreamReader, StreamWriter writer) -> Coro<> {
        started.set();
        co_await may_finish.wait();
        writer.write("bye\n");
        finished = true;
    };
    Server server = co_await serve_local(handler);
    StreamPair conn = co_await connect_local(port_of(server));
    co_await started.wait();
    EXPECT_EQ(server.active_connections(), 1u);
    server.close();
    Coro<> waiting_coro = server.wait_closed();
    Task<> waiting = create_task(std::move(waiting_coro));
    for (int i = 0; i < 10; ++i) co_await sleep(0ms);
    EXPECT_FALSE(waiting.done()) << "wait_closed() returned while a handler still runs";
    may_finish.set();
    co_await waiting;
    EXPECT_TRUE(finished);
    EXPECT_EQ(server.active_connections(), 0u);
    // The handler's connection was closed after what it wrote was sent.
    std::string rest = co_await conn.first.read(-1);
    EXPECT_EQ(rest, "bye\n");
}

// Cancelling a task in wait_closed() cancels that task: the cancel is not handed to the server's
// acceptor and dropped when it comes back (the caller used to return normally, later).
// The acceptor has a connection in hand, not yet resumed, when close() cancels it: the
// connection is closed unserved, and no handler starts after close() (wait_closed() would not
// wait for it).
CORIO_TEST(Server, AConnectionAcceptedAsTheServerClosesIsNotServed) {
    bool handler_started = false;
    auto handler = [&handler_started](StreamReader, StreamWriter) -> Coro<> {
        handler_started = true;
        co_return;
    };
    Coro<Server> starting = start_server(handler, "127.0.0.1", 0);
    Server server = co_await std::move(starting);
    SocketAddress to = server.sockets()[0].getsockname();
    co_await sleep(0s);  // the acceptor waits
    int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CO_ASSERT_TRUE(client >= 0);
    CO_ASSERT_EQ(::connect(client, to.native(), to.length()), 0);  // the backlog takes it
    co_await sleep(0s);  // the poll after this tick completes the accept: the acceptor runs after us
    server.close();
    Coro<> closing = server.wait_closed();
    co_await std::move(closing);
    co_await sleep(0s);
    EXPECT_FALSE(handler_started);
    char byte;
    EXPECT_EQ(::recv(client, &byte, 1, 0), 0);  // closed unserved
    ::close(client);
}

CORIO_TEST(Server, CancellingWaitClosedCancelsTheCaller) {
    Event started, may_finish;
    auto handler = [&](StreamReader, StreamWriter) -> Coro<> {
        started.set();
        co_await may_finish.wait();
    };
    Server server = co_await serve_local(handler);
    StreamPair conn = co_await connect_local(port_of(server));
    co_await started.wait();
    server.close();
    Coro<> waiting_coro = server.wait_closed();
    Task<> waiting = create_task(std::move(waiting_coro));
    co_await sleep(0ms);
    waiting.cancel();
    for (int i = 0; i < 5; ++i) co_await sleep(0ms);
    EXPECT_TRUE(waiting.cancelled());
    may_finish.set();
    Coro<> closing = wait_for(server.wait_closed(), 10s);
    co_await std::move(closing);
}

CORIO_TEST(Server, AZeroStreamLimitIsRefusedAtStart) {
    bool refused = false;
    try {
        ServerOptions options;
        options.limit = 0;
        Coro<Server> starting = serve_local(echo_handler, options);
        Server server = co_await std::move(starting);
    } catch (const std::invalid_argument&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
}

// In debug mode too: the handler tasks close_clients() cancels end cancelled, so none is
// reported as having swallowed its cancellation.
CORIO_TEST(Server, CloseClientsCancelsHandlers) {
    EventLoop& loop = get_running_loop();
    std::vector<std::string> reports;
    auto previous = loop.get_exception_handler();
    loop.set_exception_handler([&reports](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
    loop.set_debug(true);
    Event started;
    bool handler_cancelled = false;
    auto handler = [&](StreamReader reader, StreamWriter) -> Coro<> {
        started.set();
        try {
            std::string never = co_await reader.readline();
        } catch (const CancelledError&) {
            handler_cancelled = true;
            throw;
        }
    };
    Server server = co_await serve_local(handler);
    StreamPair conn = co_await connect_local(port_of(server));
    co_await started.wait();
    server.close();
    server.close_clients();
    Coro<> closing = wait_for(server.wait_closed(), 10s);
    co_await std::move(closing);
    EXPECT_TRUE(handler_cancelled);
    std::string eof = co_await conn.first.read(-1);
    EXPECT_EQ(eof, "");
    co_await settle();
    loop.set_debug(false);
    loop.set_exception_handler(previous);
    for (const auto& r : reports) EXPECT_EQ(r.find("swallowed"), std::string::npos) << r;
}

// A listening socket that breaks (shut down under the server: accept() says EINVAL) is reported
// and stops accepting; the server still closes cleanly (its acceptor used to die with the error,
// and wait_closed() rethrew it without waiting for the handlers).
CORIO_TEST(Server, ABrokenListenerIsReportedAndTheServerStillClosesCleanly) {
    EventLoop& loop = get_running_loop();
    std::vector<std::string> reports;
    auto previous = loop.get_exception_handler();
    loop.set_exception_handler([&reports](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
    Server server = co_await serve_local(echo_handler);
    ::shutdown(server.sockets()[0].fileno(), SHUT_RDWR);
    co_await settle();
    server.close();
    Coro<> closing = wait_for(server.wait_closed(), 10s);
    co_await std::move(closing);
    loop.set_exception_handler(previous);
    bool reported = false;
    for (const auto& r : reports) reported = reported || r.find("stops accepting") != std::string::npos;
    EXPECT_TRUE(reported) << reports.size() << " report(s)";
}

// A handler task cancelled before its first step never runs its body: its place in the server's
// client list must still go, or wait_closed() waits forever (found by the showcase's Ctrl-C).
CORIO_TEST(Server, CloseClientsBeforeTheHandlerStartsStillLetsWaitClosedReturn) {
    bool handler_ran = false;
    auto handler = [&handler_ran](StreamReader, StreamWriter) -> Coro<> {
        handler_ran = true;
        co_return;
    };
    Server server = co_await serve_local(handler);
    StreamPair conn = co_await connect_local(port_of(server));
    while (server.active_connections() == 0) co_await sleep(Clock::duration::zero());
    server.close();
    server.close_clients();
    Coro<> closing = wait_for(server.wait_closed(), 10s);
    co_await std::move(closing);
    EXPECT_FALSE(handler_ran);
    EXPECT_EQ(server.active_connections(), 0u);
    std::string eof = co_await conn.first.read(-1);
    EXPECT_EQ(eof, "");
}

CORIO_TEST(Server, CancelledServeForeverClosesTheServer) {
    Server server = co_await serve_local(echo_handler);
    std::uint16_t port = port_of(server);
    Coro<> forever = server.serve_forever();
    Task<> serving = create_task(std::move(forever));
    // It serves meanwhile.
    StreamPair conn = co_await connect_local(port);
    conn.second.write("ping");
    std::string pong = co_await conn.first.read(100);
    EXPECT_EQ(pong, "ping");
    conn.second.close();
    co_await conn.second.wait_closed();
    serving.cancel();
    CO_CATCH(CancelledError, cancelled, serving);
    EXPECT_TRUE(cancelled.has_value());
    EXPECT_FALSE(server.is_serving());
    EXPECT_TRUE(server.sockets().empty());
    CO_CATCH(std::system_error, refused, open_connection("127.0.0.1", port));
    EXPECT_TRUE(refused.has_value());
    // serve_forever on a closed server is an error.
    CO_CATCH(std::logic_error, closed, server.serve_forever());
    EXPECT_TRUE(closed.has_value());
}

CORIO_TEST(Server, ServeForeverReturnsWhenClosed) {
    Server server = co_await serve_local(echo_handler);
    Coro<> forever = server.serve_forever();
    Task<> serving = create_task(std::move(forever));
    co_await sleep(0ms);
    EXPECT_FALSE(serving.done());
    server.close();
    co_await serving;
    co_await server.wait_closed();
}

// asyncio refuses a second serve_forever() at once; a stray one that waited and then timed out
// would close the server under the first.
CORIO_TEST(Server, ASecondServeForeverIsRefusedAndLeavesTheServerServing) {
    Server server = co_await serve_local(echo_handler);
    Coro<> forever = server.serve_forever();
    Task<> serving = create_task(std::move(forever));
    co_await sleep(0ms);
    Coro<> again = server.serve_forever();
    EXPECT_THROW(co_await std::move(again), std::logic_error);
    EXPECT_TRUE(server.is_serving());
    EXPECT_FALSE(serving.done());
    serving.cancel();
    EXPECT_THROW(co_await serving, CancelledError);
    EXPECT_FALSE(server.is_serving());
    // Once the first has ended, the flag is down (the server is closed: that is the refusal now).
    Coro<> after = server.serve_forever();
    EXPECT_THROW(co_await std::move(after), std::logic_error);
}

CORIO_TEST(Server, ReusePortLetsTwoServersShareAPort) {
    auto handler_for = [](std::string name) {
        return [name](StreamReader reader, StreamWriter writer) -> Coro<> {
            std::string line = co_await reader.readline();
            writer.write(name + "\n");
            co_await writer.drain();
        };
    };
    ServerOptions shared{.reuse_port = true};
    ClientHandler handler_a = handler_for("A"), handler_b = handler_for("B"), handler_c = handler_for("C");
    Server a = co_await serve_local(handler_a, shared);
    std::uint16_t port = port_of(a);
    Coro<Server> starting_b = start_server(handler_b, "127.0.0.1", port, shared);
    Server b = co_await std::move(starting_b);
    EXPECT_EQ(port_of(b), port);
    // Without SO_REUSEPORT the port is taken.
    CO_CATCH(std::system_error, taken, start_server(handler_c, "127.0.0.1", port));
    CO_ASSERT_TRUE(taken.has_value());
    EXPECT_EQ(taken->code().value(), EADDRINUSE);
    // The kernel spreads connections over both (by the 4-tuple's hash: 32 connections all
    // landing on one server would have probability 2^-31).
    int to_a = 0, to_b = 0;
    for (int i = 0; i < 32; ++i) {
        StreamPair conn = co_await connect_local(port);
        conn.second.write("who?\n");
        std::string who = co_await conn.first.readline();
        if (who == "A\n") ++to_a;
        if (who == "B\n") ++to_b;
        conn.second.close();
        co_await conn.second.wait_closed();
    }
    EXPECT_EQ(to_a + to_b, 32);
    EXPECT_GT(to_a, 0);
    EXPECT_GT(to_b, 0);
    co_await a.aclose();
    co_await b.aclose();
}

CORIO_TEST(Server, AsyncWithClosesTheServer) {
    Server kept;
    std::uint16_t port = 0;
    auto body = [&](Server& server) -> Coro<> {
        kept = server;
        port = port_of(server);
        StreamPair conn = co_await connect_local(port);
        conn.second.write("inside\n");
        std::string line = co_await conn.first.readline();
        EXPECT_EQ(line, "echo: inside\n");
        conn.second.close();
        co_await conn.second.wait_closed();
    };
    Coro<Server> starting = start_server(line_handler, "127.0.0.1", 0);
    Coro<> scoped = async_with(std::move(starting), body);
    co_await std::move(scoped);
    EXPECT_FALSE(kept.is_serving());
    EXPECT_EQ(kept.active_connections(), 0u);
    CO_CATCH(std::system_error, refused, open_connection("127.0.0.1", port));
    EXPECT_TRUE(refused.has_value());
}

CORIO_TEST(Server, AsyncWithClosesTheServerWhenTheBodyThrows) {
    Server kept;
    auto body = [&](Server& server) -> Coro<> {
        kept = server;
        co_await sleep(0ms);
        throw std::runtime_error("body failed");
    };
    Coro<Server> starting = start_server(line_handler, "127.0.0.1", 0);
    Coro<> scoped = async_with(std::move(starting), body);
    CO_CATCH(std::runtime_error, failed, std::move(scoped));
    EXPECT_TRUE(failed.has_value());
    EXPECT_FALSE(kept.is_serving());
}

CORIO_TEST(Server, HandlerExceptionGoesToTheExceptionHandlerAndClosesTheConnection) {
    EventLoop& loop = get_running_loop();
    auto previous = loop.get_exception_handler();
    std::vector<ExceptionContext> seen;
    loop.set_exception_handler([&](EventLoop&, const ExceptionContext& c) { seen.push_back(c); });
    auto handler = [](StreamReader reader, StreamWriter writer) -> Coro<> {
        std::string line = co_await reader.readline();
        writer.write("partial answer\n");
        throw std::runtime_error("boom: " + line.substr(0, line.size() - 1));
    };
    Server server = co_await serve_local(handler);
    StreamPair conn = co_await connect_local(port_of(server));
    conn.second.write("request\n");
    // What the handler wrote before failing still arrives, then EOF: the connection is closed.
    Coro<std::string> rest_coro = conn.first.read(-1);
    Coro<std::string> bounded = wait_for(std::move(rest_coro), 10s);
    std::string rest = co_await std::move(bounded);
    EXPECT_EQ(rest, "partial answer\n");
    co_await server.aclose();
    loop.set_exception_handler(previous);
    CO_ASSERT_EQ(seen.size(), 1u);
    EXPECT_NE(seen[0].message.find("client_connected_cb"), std::string::npos) << seen[0].message;
    CO_ASSERT_TRUE(bool(seen[0].exception));
    try {
        std::rethrow_exception(seen[0].exception);
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "boom: request");
    }
}

CORIO_TEST(Server, TwoHundredConcurrentConnections) {
    Server server = co_await serve_local(line_handler, ServerOptions{.backlog = 512});
    std::uint16_t port = port_of(server);
    int ok = 0;
    auto client = [&](int i) -> Coro<> {
        StreamPair conn = co_await connect_local(port);
        std::string line = "client " + std::to_string(i) + "\n";
        conn.second.write(line);
        co_await conn.second.drain();
        std::string reply = co_await conn.first.readline();
        if (reply == "echo: " + line) ++ok;
        conn.second.close();
        co_await conn.second.wait_closed();
    };
    auto spawn_all = [&](TaskGroup& tg) -> Coro<> {
        for (int i = 0; i < 200; ++i) tg.create_task(client(i));
        co_return;
    };
    Coro<> all = task_group(spawn_all);
    Coro<> bounded = wait_for(std::move(all), 30s);
    co_await std::move(bounded);
    EXPECT_EQ(ok, 200);
    co_await server.aclose();
}

// --------------------------------------------------------------------------------------------
// Cancellation and timeouts of stream I/O

CORIO_TEST(StreamCancel, CancelledReadLosesNoBytes) {
    // Virtual time: each timeout fires as soon as the loop has nothing else to do, i.e. once
    // every byte in flight on loopback has been delivered.
    corio::testing::MockClock clock;
    Server server = co_await serve_local(echo_handler);
    StreamPair conn = co_await connect_local(port_of(server));
    auto& [reader, writer] = conn;
    Coro<std::string> first = wait_for(reader.readline(), 50ms);
    CO_CATCH(TimeoutError, timed_out, std::move(first));
    EXPECT_TRUE(timed_out.has_value());
    writer.write("partial");
    Coro<std::string> second = wait_for(reader.readline(), 20ms);
    CO_CATCH(TimeoutError, timed_out_again, std::move(second));
    EXPECT_TRUE(timed_out_again.has_value());
    writer.write(" line\n");
    std::string line = co_await reader.readline();
    EXPECT_EQ(line, "partial line\n");
    writer.close();
    server.close();
    co_await server.wait_closed();
}

CORIO_TEST(StreamCancel, WaitForReadlineTimesOutInVirtualTime) {
    corio::testing::MockClock clock;
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    auto start = clock.now();
    Coro<std::string> limited = wait_for(reader.readline(), 5s);
    CO_CATCH(TimeoutError, timed_out, std::move(limited));
    EXPECT_TRUE(timed_out.has_value());
    EXPECT_DOUBLE_EQ(clock.seconds_since(start), 5.0);
    // A line that is already there comes back without any virtual time passing.
    link.server.second.write("late\n");
    auto before = clock.now();
    Coro<std::string> in_time = wait_for(reader.readline(), 5s);
    std::string line = co_await std::move(in_time);
    EXPECT_EQ(line, "late\n");
    EXPECT_EQ(clock.now(), before);
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

namespace {
Coro<std::string> readline_of(StreamReader reader) {
    std::string line = co_await reader.readline();
    co_return line;
}
Coro<std::string> read_into_string(StreamReader reader) {
    std::vector<char> buf(64);
    std::size_t n = co_await reader.read_into(buf);
    co_return std::string(buf.data(), n);
}

// The read completes in the backend and its task is woken; in the same tick, before it runs,
// another task cancels it. The bytes already received must stay in the buffer, and the stream
// must go on: the late cancel ends the read, not the connection (it used to leave the stream at
// its end for good).
Coro<> cancel_a_completed_read(Coro<std::string> (*read)(StreamReader)) {
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    Task<std::string> blocked = create_task(read(reader));
    co_await sleep(0ms);
    co_await sleep(0ms);
    EXPECT_FALSE(blocked.done());
    link.server.second.write("kept\n");
    co_await sleep(0ms);  // the next tick polls (completing the read) then runs us first
    blocked.cancel();
    CO_CATCH(CancelledError, cancelled, blocked);
    std::string got;
    if (!cancelled) {
        got = blocked.result();  // the read won the race: fine, it returned the bytes
    } else {
        got = co_await reader.readline();
    }
    EXPECT_EQ(got, "kept\n");
    EXPECT_FALSE(reader.at_eof());
    link.server.second.write("more\n");
    std::string next = co_await reader.readline();
    EXPECT_EQ(next, "more\n");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}
}  // namespace

CORIO_TEST(StreamCancel, BytesCompletedAsTheReadIsCancelledAreKept) {
    Coro<> racing = cancel_a_completed_read(readline_of);
    co_await std::move(racing);
}

CORIO_TEST(StreamCancel, BytesCompletedAsAReadIntoIsCancelledAreKeptAndTheStreamGoesOn) {
    Coro<> racing = cancel_a_completed_read(read_into_string);
    co_await std::move(racing);
}

namespace {
// The loop's state that cancelled operations must give back: open fds and backend operations.
struct Baseline {
    int fds = open_fds();
    std::size_t ops = get_running_loop().backend().pending();
};
}  // namespace

CORIO_TEST(StreamCancel, CancelledReadLeavesNoOperationBehind) {
    Baseline base;
    {
        StreamLink link = co_await stream_link();
        Coro<std::string> reading = link.client.first.read(100);
        Task<std::string> blocked = create_task(std::move(reading));
        co_await sleep(0ms);
        co_await sleep(0ms);
        EXPECT_GT(get_running_loop().backend().pending(), base.ops);
        blocked.cancel();
        CO_CATCH(CancelledError, cancelled, blocked);
        EXPECT_TRUE(cancelled.has_value());
        EXPECT_EQ(get_running_loop().backend().pending(), base.ops);
        // The stream still works after the cancelled read.
        link.server.second.write("after\n");
        std::string line = co_await link.client.first.readline();
        EXPECT_EQ(line, "after\n");
        Coro<> closing = close_link(std::move(link));
        co_await std::move(closing);
    }
    co_await settle();
    EXPECT_EQ(open_fds(), base.fds);
    EXPECT_EQ(get_running_loop().backend().pending(), base.ops);
}

CORIO_TEST(StreamCancel, CancelledAcceptLeavesNoOperationBehind) {
    Baseline base;
    {
        Socket listener = Socket::create(AF_INET, SOCK_STREAM);
        listener.bind(SocketAddress("127.0.0.1", 0));
        listener.listen();
        Coro<std::pair<Socket, SocketAddress>> accepting = sock_accept(listener);
        Task<std::pair<Socket, SocketAddress>> blocked = create_task(std::move(accepting));
        co_await sleep(0ms);
        co_await sleep(0ms);
        EXPECT_FALSE(blocked.done());
        EXPECT_GT(get_running_loop().backend().pending(), base.ops);
        blocked.cancel();
        CO_CATCH(CancelledError, cancelled, blocked);
        EXPECT_TRUE(cancelled.has_value());
        EXPECT_EQ(get_running_loop().backend().pending(), base.ops);
        // The listener still accepts.
        Coro<StreamPair> connecting = open_connection("127.0.0.1", listener.getsockname().port());
        StreamPair conn = co_await std::move(connecting);
        std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
        EXPECT_TRUE(bool(accepted.first));
        conn.second.close();
        co_await conn.second.wait_closed();
    }
    co_await settle();
    EXPECT_EQ(open_fds(), base.fds);
    EXPECT_EQ(get_running_loop().backend().pending(), base.ops);
}

CORIO_TEST(StreamCancel, CancelledConnectLeavesNoOperationBehind) {
    Baseline base;
    {
        // A listener whose accept queue is full drops further SYNs: a connect to it stays
        // pending (the kernel would retry the SYN after a second).
        Socket listener = Socket::create(AF_INET, SOCK_STREAM);
        listener.bind(SocketAddress("127.0.0.1", 0));
        listener.listen(0);
        std::uint16_t port = listener.getsockname().port();
        std::vector<StreamPair> queued;
        std::optional<Task<StreamPair>> blocked;
        for (int attempt = 0; attempt < 8 && !blocked; ++attempt) {
            Coro<StreamPair> connecting = open_connection("127.0.0.1", port);
            Task<StreamPair> t = create_task(std::move(connecting));
            for (int i = 0; i < 5; ++i) co_await sleep(0ms);
            if (t.done())
                queued.push_back(t.result());  // took the queue's one place
            else
                blocked = t;
        }
        CO_ASSERT_TRUE(blocked.has_value());
        EXPECT_GT(get_running_loop().backend().pending(), base.ops);
        blocked->cancel();
        CO_CATCH(CancelledError, cancelled, *blocked);
        EXPECT_TRUE(cancelled.has_value());
        EXPECT_EQ(get_running_loop().backend().pending(), base.ops);
    }
    co_await settle();
    EXPECT_EQ(open_fds(), base.fds);
    // The next connection on the same loop works.
    Server server = co_await serve_local(line_handler);
    StreamPair conn = co_await connect_local(port_of(server));
    conn.second.write("fine\n");
    std::string line = co_await conn.first.readline();
    EXPECT_EQ(line, "echo: fine\n");
    conn.second.close();
    co_await server.aclose();
}

CORIO_TEST(StreamCancel, CancelledDrainLeavesNoOperationBehind) {
    Baseline base;
    {
        Socket listener = Socket::create(AF_INET, SOCK_STREAM);
        listener.set_option(SOL_SOCKET, SO_RCVBUF, 8192);
        listener.bind(SocketAddress("127.0.0.1", 0));
        listener.listen();
        Coro<StreamPair> connecting = open_connection("127.0.0.1", listener.getsockname().port());
        StreamPair conn = co_await std::move(connecting);
        std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
        auto& writer = conn.second;
        std::string chunk(64 * 1024, 'd');
        while (writer.get_write_buffer_size() <= 64 * 1024) writer.write(chunk);
        Coro<> draining_coro = writer.drain();
        Task<> draining = create_task(std::move(draining_coro));
        for (int i = 0; i < 5; ++i) co_await sleep(0ms);
        EXPECT_FALSE(draining.done());
        draining.cancel();
        CO_CATCH(CancelledError, cancelled, draining);
        EXPECT_TRUE(cancelled.has_value());
        // The peer goes away without reading: the pending write fails and the writer closes.
        ::linger hard{1, 0};
        ::setsockopt(accepted.first.fileno(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        accepted.first.close();
        writer.close();
        Coro<> closed = wait_for(writer.wait_closed(), 10s);
        co_await std::move(closed);
    }
    co_await settle();
    EXPECT_EQ(open_fds(), base.fds);
    EXPECT_EQ(get_running_loop().backend().pending(), base.ops);
}

CORIO_TEST(StreamCancel, ServerCloseCancelsItsPendingAccept) {
    Baseline base;
    {
        Server server = co_await serve_local(echo_handler);
        co_await sleep(0ms);
        co_await sleep(0ms);
        EXPECT_GT(get_running_loop().backend().pending(), base.ops);
        server.close();
        co_await server.wait_closed();
    }
    co_await settle();
    EXPECT_EQ(get_running_loop().backend().pending(), base.ops);
    EXPECT_EQ(open_fds(), base.fds);
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

CORIO_TEST(StreamReaderReadInto, ReadsBufferedBytesThenStraightFromTheSocket) {
    Server server = co_await start_server(echo_handler, "127.0.0.1", 0);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    auto [reader, writer] = co_await open_connection("127.0.0.1", port);
    writer.write("hello\nworld");
    std::string line = co_await reader.readline();  // may buffer part of "world" too
    EXPECT_EQ(line, "hello\n");
    std::string rest;
    char buf[3];
    while (rest.size() < 5) {
        std::size_t n = co_await reader.read_into(buf);
        CO_ASSERT_TRUE(n > 0);
        rest.append(buf, n);
    }
    EXPECT_EQ(rest, "world");
    writer.write_eof();
    std::size_t end = co_await reader.read_into(buf);
    EXPECT_EQ(end, 0u);
    writer.close();
    co_await server.aclose();
}

CORIO_TEST(StreamReaderReadInto, ACancelledReadIntoLosesNoBytes) {
    corio::testing::MockClock clock;
    Server server = co_await start_server(echo_handler, "127.0.0.1", 0);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    auto [reader, writer] = co_await open_connection("127.0.0.1", port);
    std::vector<char> buf(64);
    bool timed_out = false;
    auto reading = [&]() -> Coro<std::size_t> { co_return co_await reader.read_into(buf); };
    try {
        co_await wait_for(reading(), 10ms);
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    writer.write("kept\n");
    std::string line = co_await reader.readline();
    EXPECT_EQ(line, "kept\n");
    writer.close();
    co_await server.aclose();
}

namespace {
// Numbered lines, so that a byte out of order or lost shows as a wrong line.
std::string numbered_lines(std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        out += "line ";
        out += std::to_string(i);
        out += std::string(i % 37, '.');
        out += '\n';
    }
    return out;
}

// Reads `reader` to its end, turn by turn with each kind of read (small read_into, readline,
// readexactly, read(n), a large read_into, readuntil), and returns what came, in order.
Coro<std::string> read_with_every_call(StreamReader reader) {
    std::string got;
    std::vector<char> small(100);
    std::vector<char> large(64 * 1024);
    for (int turn = 0;; ++turn) {
        std::string piece;
        switch (turn % 6) {
            case 0: {
                Coro<std::size_t> into = reader.read_into(small);
                std::size_t n = co_await std::move(into);
                piece.assign(small.data(), n);
                break;
            }
            case 1: {
                Coro<std::string> line = reader.readline();
                piece = co_await std::move(line);
                break;
            }
            case 2: {
                Coro<std::string> exact = reader.readexactly(1000);
                try {
                    piece = co_await std::move(exact);
                } catch (IncompleteReadError& e) {
                    piece = std::move(e.partial);
                }
                break;
            }
            case 3: {
                Coro<std::string> some = reader.read(5000);
                piece = co_await std::move(some);
                break;
            }
            case 4: {
                Coro<std::size_t> into = reader.read_into(large);
                std::size_t n = co_await std::move(into);
                piece.assign(large.data(), n);
                break;
            }
            case 5: {
                Coro<std::string> until = reader.readuntil("\n");
                try {
                    piece = co_await std::move(until);
                } catch (IncompleteReadError& e) {
                    piece = std::move(e.partial);
                }
                break;
            }
        }
        if (piece.empty() && reader.at_eof()) break;
        got += piece;
    }
    co_return got;
}
}  // namespace

CORIO_TEST(StreamReaderReadInto, BytesBeyondTheCallersBufferComeBackInOrderThroughEveryReadCall) {
    // A read may take more than the caller's buffer holds (up to what the socket has): the
    // rest must come back, in order, from whichever read comes next, then the end.
    StreamLink link = co_await stream_link();
    std::string payload = numbered_lines(20000);
    link.server.second.write(payload);
    link.server.second.write_eof();
    for (int i = 0; i < 5; ++i) co_await sleep(0ms);  // let the kernel queue what it takes
    Coro<std::string> reading = read_with_every_call(link.client.first);
    std::string got = co_await std::move(reading);
    EXPECT_EQ(got.size(), payload.size());
    EXPECT_TRUE(got == payload);
    std::vector<char> buf(10);
    Coro<std::size_t> at_end = link.client.first.read_into(buf);
    std::size_t end = co_await std::move(at_end);
    EXPECT_EQ(end, 0u);
    EXPECT_TRUE(link.client.first.at_eof());
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReaderReadInto, ReadlineAfterALargeReadKeepsTheLimitRules) {
    // Small read_into calls that fill their buffer make the next one take the whole burst: the
    // overlong line then sits in the buffer, and readline must treat it exactly as if it had
    // arrived by itself.
    StreamLink link = co_await stream_link(/*client_limit=*/1000);
    std::string burst = "abcdefgh" "short\n" + std::string(3000, 'x') + "\nafter\n";
    link.server.second.write(burst);
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);
    std::string head;
    char four[4];
    while (head.size() < 8) {
        Coro<std::size_t> small_read = link.client.first.read_into(std::span<char>(four, std::min<std::size_t>(4, 8 - head.size())));
        std::size_t n = co_await std::move(small_read);
        CO_ASSERT_TRUE(n > 0);
        head.append(four, n);
    }
    EXPECT_EQ(head, "abcdefgh");
    Coro<std::string> first_line = link.client.first.readline();
    std::string first = co_await std::move(first_line);
    EXPECT_EQ(first, "short\n");
    CO_CATCH(LimitOverrunError, overrun, link.client.first.readline());
    CO_ASSERT_TRUE(overrun.has_value());
    Coro<std::string> after_line = link.client.first.readline();
    std::string after = co_await std::move(after_line);
    EXPECT_EQ(after, "after\n");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReaderReadInto, BytesCompletedAsAReadIntoIsCancelledAreKept) {
    // The wait ends in the backend (readiness, or the read itself on io_uring) and the task is
    // cancelled before it runs: whatever was read must stay for the next read.
    StreamLink link = co_await stream_link();
    auto& reader = link.client.first;
    std::vector<char> buf(64);
    auto reading = [&]() -> Coro<std::string> {
        Coro<std::size_t> into = reader.read_into(buf);
        std::size_t n = co_await std::move(into);
        co_return std::string(buf.data(), n);
    };
    Coro<std::string> first_read = reading();
    Task<std::string> blocked = create_task(std::move(first_read));
    co_await sleep(0ms);
    co_await sleep(0ms);
    EXPECT_FALSE(blocked.done());
    link.server.second.write("kept\n");
    co_await sleep(0ms);  // the next tick polls (completing the wait) then runs us first
    blocked.cancel();
    CO_CATCH(CancelledError, cancelled, blocked);
    std::string line;
    if (!cancelled) {
        line = blocked.result();  // the read won the race: it returned the bytes
    }
    if (line.size() < 5) {
        Coro<std::string> rest = reader.readline();
        line += co_await std::move(rest);
    }
    EXPECT_EQ(line, "kept\n");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamReaderReadInto, OverAPipeBytesBeyondTheCallersBufferComeBackInOrder) {
    // Pipes (subprocess output) are read with readv too; a big pipe holds the whole payload,
    // so the first small read can take it all at once.
    int fds[2];
    CO_ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);  // best effort: the test holds either way
    StreamReader reader(detail::make_fd_transport(fds[0], false, default_stream_limit));
    StreamWriter writer(detail::make_fd_transport(fds[1], false, default_stream_limit));
    std::string payload = numbered_lines(20000);
    writer.write(payload);
    writer.close();  // a pipe's writer ends the stream by closing, once flushed
    Coro<std::string> reading = read_with_every_call(reader);
    std::string got = co_await std::move(reading);
    EXPECT_EQ(got.size(), payload.size());
    EXPECT_TRUE(got == payload);
    Coro<> closed = writer.wait_closed();
    co_await std::move(closed);
}

// --------------------------------------------------------------------------------------------
// Writes made while input is buffered (kept back until the next write or the end of the tick,
// so that an echo's pieces leave in one syscall)

namespace {
// The client's reader is left holding "second\n" (both lines arrive together).
Coro<StreamLink> link_with_buffered_input() {
    Coro<StreamLink> linking = stream_link();
    StreamLink link = co_await std::move(linking);
    link.server.second.write("first\nsecond\n");
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);
    Coro<std::string> reading = link.client.first.readline();
    std::string first = co_await std::move(reading);
    EXPECT_EQ(first, "first\n");
    co_return link;
}
}  // namespace

CORIO_TEST(StreamWriter, AWriteWhileInputIsBufferedLeavesByTheEndOfTheTurn) {
    // Virtual time: if the write stayed behind, the peer's read would time out instead.
    corio::testing::MockClock clock;
    Coro<StreamLink> linking = link_with_buffered_input();
    StreamLink link = co_await std::move(linking);
    link.client.second.write("reply");  // the reader still holds "second\n"
    Coro<> draining = link.client.second.drain();
    co_await std::move(draining);
    Coro<std::string> peer_read = wait_for(link.server.first.readexactly(5), 5s);
    std::string got = co_await std::move(peer_read);
    EXPECT_EQ(got, "reply");
    EXPECT_EQ(link.client.second.get_write_buffer_size(), 0u);
    Coro<std::string> second = link.client.first.readline();
    std::string line = co_await std::move(second);
    EXPECT_EQ(line, "second\n");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamWriter, WritesKeptBackLeaveInOrderWithTheNextOnes) {
    Coro<StreamLink> linking = link_with_buffered_input();
    StreamLink link = co_await std::move(linking);
    auto& writer = link.client.second;
    writer.write("one,");
    writer.write("two,");
    EXPECT_EQ(writer.get_write_buffer_size(), 8u);  // kept back, and counted as buffered
    Coro<std::string> second = link.client.first.readline();  // the input is used up
    std::string line = co_await std::move(second);
    EXPECT_EQ(line, "second\n");
    writer.write("three,");
    std::string big(100 * 1024, 'x');  // more than the high-water mark: never kept back
    writer.write(big);
    Coro<> draining = writer.drain();
    co_await std::move(draining);
    std::string expected = "one,two,three," + big;
    Coro<std::string> peer_read = link.server.first.readexactly(expected.size());
    std::string got = co_await std::move(peer_read);
    EXPECT_TRUE(got == expected);
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

// A task waiting in drain() for a write kept back (its high-water mark lowered below it) returns
// once the end of the tick has sent it.
CORIO_TEST(StreamWriter, DrainWaitingForAWriteKeptBackReturnsWhenItLeaves) {
    corio::testing::MockClock clock;  // a drain that never returned would time out at once
    Coro<StreamLink> linking = link_with_buffered_input();
    StreamLink link = co_await std::move(linking);
    auto& writer = link.client.second;
    writer.write("held");  // kept back: the reader still holds "second\n"
    writer.set_write_buffer_limits(0);
    EXPECT_EQ(writer.get_write_buffer_size(), 4u);
    Coro<> draining = wait_for(writer.drain(), 5s);
    co_await std::move(draining);
    EXPECT_EQ(writer.get_write_buffer_size(), 0u);
    Coro<std::string> peer_read = link.server.first.readexactly(4);
    std::string got = co_await std::move(peer_read);
    EXPECT_EQ(got, "held");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamWriter, CloseAndWriteEofSendWhatWasKeptBack) {
    Coro<StreamLink> linking = link_with_buffered_input();
    StreamLink link = co_await std::move(linking);
    link.client.second.write("last words");
    link.client.second.write_eof();
    Coro<std::string> peer_read = link.server.first.read(-1);
    std::string got = co_await std::move(peer_read);
    EXPECT_EQ(got, "last words");
    link.server.second.write("bye");
    link.server.second.close();
    Coro<std::string> rest = link.client.first.read(-1);
    std::string tail = co_await std::move(rest);
    EXPECT_EQ(tail, "second\nbye");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

CORIO_TEST(StreamWriter, CloseRightAfterAWriteKeptBackSendsIt) {
    Coro<StreamLink> linking = link_with_buffered_input();
    StreamLink link = co_await std::move(linking);
    link.client.second.write("sent on close");
    link.client.second.close();
    Coro<> closed = link.client.second.wait_closed();
    co_await std::move(closed);
    Coro<std::string> peer_read = link.server.first.read(-1);
    std::string got = co_await std::move(peer_read);
    EXPECT_EQ(got, "sent on close");
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

// --------------------------------------------------------------------------------------------
// A stream belongs to the loop it was made on (several loops, one after another)

namespace {

using corio_test::unix_socket_pair;

struct LoopStreams {
    StreamPair ours;
    StreamPair theirs;
    int our_fd = -1;
};

Coro<> make_loop_streams(LoopStreams* out) {
    auto [a, b] = unix_socket_pair();
    out->our_fd = a.fileno();
    out->ours = make_streams(std::move(a));
    out->theirs = make_streams(std::move(b));
    co_return;
}

// Each operation either works or is refused with std::logic_error; counts the refusals.
Coro<> use_streams(LoopStreams* s, int* refused) {
    try {
        s->theirs.second.write("hello\n");
    } catch (const std::logic_error&) {
        ++*refused;
    }
    try {
        s->theirs.second.write_eof();
    } catch (const std::logic_error&) {
        ++*refused;
    }
    try {
        Coro<std::string> line = s->ours.first.readline();
        co_await std::move(line);
    } catch (const std::logic_error&) {
        ++*refused;
    }
    try {
        Coro<std::string> some = s->ours.first.read(3);
        co_await std::move(some);
    } catch (const std::logic_error&) {
        ++*refused;
    }
    try {
        std::vector<char> buf(8);
        Coro<std::size_t> into = s->ours.first.read_into(buf);
        co_await std::move(into);
    } catch (const std::logic_error&) {
        ++*refused;
    }
}

}  // namespace

TEST(StreamLoops, AStreamUsedOnALaterLoopIsRefused) {
    LoopStreams s;
    run(make_loop_streams(&s));
    int refused = 0;
    run(use_streams(&s, &refused));  // its loop is gone (the new one may well sit at its address)
    EXPECT_EQ(refused, 5);
    s.ours.second.close();  // closing never fails: it is how the connection is cleaned up
}

TEST(StreamLoops, AStreamUsedOnAnotherOpenLoopIsRefusedAndStillWorksOnItsOwn) {
    LoopStreams s;
    Runner own;
    own.run(make_loop_streams(&s));
    {
        Runner other;
        int refused = 0;
        other.run(use_streams(&s, &refused));
        EXPECT_EQ(refused, 5);
    }
    int refused = 0;
    own.run(use_streams(&s, &refused));
    EXPECT_EQ(refused, 0);
}

TEST(StreamLoops, MakeStreamsWithoutARunningLoopIsRefused) {
    auto [a, b] = unix_socket_pair();
    int fd = a.fileno();
    EXPECT_THROW(make_streams(std::move(a)), std::logic_error);
    EXPECT_LT(::fcntl(fd, F_GETFD), 0) << "the socket it was given is closed";
}

namespace {

// A read that waits (so that the backend knows the fd), then gives up.
Coro<> wait_then_give_up(LoopStreams* s) {
    Coro<> making = make_loop_streams(s);
    co_await std::move(making);
    Task<std::string> reading = create_task(s->ours.first.read(100));
    Coro<> ticks = settle();
    co_await std::move(ticks);
    reading.cancel();
    try {
        co_await reading;
    } catch (const CancelledError&) {
    }
}

Coro<> read_on_a_new_pair(int expected_fd, std::string* got) {
    corio::testing::MockClock clock;  // a hang shows as a timeout, at once
    auto [a, b] = unix_socket_pair();
    EXPECT_EQ(a.fileno(), expected_fd) << "the new socket should reuse the number";
    auto [reader, writer] = make_streams(std::move(a));
    auto [peer_reader, peer_writer] = make_streams(std::move(b));
    Task<std::string> reading = create_task(reader.read(100));
    Coro<> ticks = settle();
    co_await std::move(ticks);
    peer_writer.write("hello");
    Coro<std::string> bounded = wait_for(std::move(reading), 5s);
    try {
        *got = co_await std::move(bounded);
    } catch (const TimeoutError&) {
        *got = "timeout";
    }
}

Coro<> answer_first_of_two_requests(int* peer_fd, StreamWriter* keep) {
    auto [a, b] = unix_socket_pair();
    *peer_fd = b.release();
    auto [reader, writer] = make_streams(std::move(a));
    if (keep) *keep = writer;
    ::send(*peer_fd, "req1\nreq2\n", 10, 0);
    Coro<std::string> line = reader.readline();
    co_await std::move(line);
    writer.write("resp1\n");  // "req2\n" is still buffered: kept back for the end of the tick
    EXPECT_EQ(writer.get_write_buffer_size(), 6u);
}

std::string recv_now(int fd) {
    char buf[64];
    long n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? "<nothing>" : std::string(buf, std::size_t(n));
}

}  // namespace

TEST(StreamLoops, AStreamClosedBetweenRunsLeavesTheBackendNothingStale) {
    Runner runner;
    LoopStreams s;
    runner.run(wait_then_give_up(&s));
    int fd = s.our_fd;
    s = LoopStreams{};  // closed while the loop does not run
    std::string got;
    runner.run(read_on_a_new_pair(fd, &got));
    EXPECT_EQ(got, "hello");
}

TEST(StreamWriterLoopEnd, AWriteKeptBackLeavesWhenTheLoopEndsFirst) {
    int peer = -1;
    StreamWriter keep;  // the application keeps its writer past the loop
    run(answer_first_of_two_requests(&peer, &keep));
    EXPECT_EQ(recv_now(peer), "resp1\n");
    keep = StreamWriter();
    EXPECT_EQ(recv_now(peer), "");  // then the end
    ::close(peer);
}

// The write leaves in the tick that made it: a run that ends in that tick has sent it, although
// the loop lives on for another run (asyncio's write() would have sent it at once).
TEST(StreamWriterLoopEnd, AWriteKeptBackHasLeftWhenARunEndingInItsTickReturns) {
    int peer = -1;
    StreamWriter keep;
    Runner runner;
    runner.run(answer_first_of_two_requests(&peer, &keep));
    EXPECT_EQ(recv_now(peer), "resp1\n");
    runner.close();
    keep = StreamWriter();
    ::close(peer);
}

TEST(StreamWriterLoopEnd, AWriteKeptBackLeavesWhenTheTransportGoesWithTheLoop) {
    int peer = -1;
    run(answer_first_of_two_requests(&peer, nullptr));
    EXPECT_EQ(recv_now(peer), "resp1\n");
    EXPECT_EQ(recv_now(peer), "");
    ::close(peer);
}

// --------------------------------------------------------------------------------------------
// Closing lets go of the socket at once (io_uring: not one tick later)

CORIO_TEST(Server, ItsPortCanBeBoundAgainRightAfterClose) {
    Server first = co_await serve_local(echo_handler);
    std::uint16_t port = port_of(first);
    Coro<> ticks = settle();  // the acceptor now waits in accept
    co_await std::move(ticks);
    first.close();
    std::optional<std::system_error> error;
    Server second;
    try {
        Coro<Server> starting = start_server(echo_handler, "127.0.0.1", port);
        second = co_await std::move(starting);
    } catch (const std::system_error& e) {
        error = e;
    }
    EXPECT_FALSE(error) << (error ? error->what() : "");
    second.close();
    Coro<> a = first.wait_closed();
    co_await std::move(a);
    Coro<> b = second.wait_closed();
    co_await std::move(b);
}

namespace {
// Streams over TCP on loopback, and the raw socket at the other end.
struct StreamsAndRawPeer {
    StreamPair ours;
    Socket peer;
};
Coro<StreamsAndRawPeer> streams_to_a_raw_peer() {
    Socket listener = Socket::create(AF_INET, SOCK_STREAM);
    listener.bind(SocketAddress("127.0.0.1", 0));
    listener.listen();
    Coro<StreamPair> connecting = connect_local(listener.getsockname().port());
    StreamPair ours = co_await std::move(connecting);
    Coro<std::pair<Socket, SocketAddress>> accepting = sock_accept(listener);
    std::pair<Socket, SocketAddress> peer = co_await std::move(accepting);
    co_return StreamsAndRawPeer{std::move(ours), std::move(peer.first)};
}
}  // namespace

CORIO_TEST(StreamWriter, ThePeerSeesTheEndOnceWaitClosedReturns) {
    Coro<StreamsAndRawPeer> connecting = streams_to_a_raw_peer();
    StreamsAndRawPeer link = co_await std::move(connecting);
    StreamPair& ours = link.ours;
    Task<std::string> reading = create_task(ours.first.read(100));  // in the backend when we close
    Coro<> ticks = settle();
    co_await std::move(ticks);
    ours.second.close();
    Coro<> closed = ours.second.wait_closed();
    co_await std::move(closed);
    pollfd p{link.peer.fileno(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 1) << "no EOF for the peer yet";
    std::string rest = co_await reading;
    EXPECT_EQ(rest, "");
}

// asyncio's drain() after the connection is gone raises ConnectionResetError("Connection
// lost"): a writer that awaits drain() to learn whether its data can still leave hears it.
CORIO_TEST(StreamWriter, DrainAfterCloseSaysTheConnectionIsLost) {
    auto [ours, theirs] = unix_socket_pair();
    StreamPair streams = make_streams(std::move(ours));
    streams.second.write("last words");
    streams.second.close();
    Coro<> closed = streams.second.wait_closed();
    co_await std::move(closed);
    CO_CATCH(std::system_error, lost, streams.second.drain());
    CO_ASSERT_TRUE(lost.has_value());
    EXPECT_EQ(lost->code().value(), ECONNRESET);
    EXPECT_NE(std::string(lost->what()).find("Connection lost"), std::string::npos) << lost->what();
}

// A peer's reset shows on the read side first; drain() raises it, as asyncio's drain() raises
// the reader's exception before anything else.
CORIO_TEST(StreamWriter, DrainRaisesTheReadersError) {
    Coro<StreamsAndRawPeer> connecting = streams_to_a_raw_peer();
    StreamsAndRawPeer link = co_await std::move(connecting);
    StreamPair& conn = link.ours;
    linger hard{1, 0};  // close() sends a reset
    CO_ASSERT_EQ(::setsockopt(link.peer.fileno(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard), 0);
    link.peer.close();
    CO_CATCH(std::system_error, reset, conn.first.read(100));
    CO_ASSERT_TRUE(reset.has_value());
    CO_CATCH(std::system_error, from_drain, conn.second.drain());
    CO_ASSERT_TRUE(from_drain.has_value());
    EXPECT_EQ(from_drain->code(), reset->code());
    conn.second.close();
}

// asyncio refuses high < low with ValueError.
CORIO_TEST(StreamWriter, WaterMarksWithLowAboveHighAreRefused) {
    auto [ours, theirs] = unix_socket_pair();
    StreamPair streams = make_streams(std::move(ours));
    EXPECT_THROW(streams.second.set_write_buffer_limits(100, 200), std::invalid_argument);
    streams.second.set_write_buffer_limits(200, 200);
    streams.second.set_write_buffer_limits(200);
    co_return;
}

// wait_closed() watches an idle connection for a reset (test_net_faults.cpp), and that watch
// neither takes a reader's bytes, nor ends at the peer's end of stream (asyncio keeps a
// half-closed connection open), nor outlives the application's own close().
CORIO_TEST(StreamWaitClosed, WatchingAnIdleConnectionLeavesItsBytesToTheReader) {
    StreamLink link = co_await stream_link();
    Task<> waiting = create_task(link.server.second.wait_closed());
    for (int i = 0; i < 3; ++i) co_await sleep(0s);
    link.client.second.write("hello");
    for (int i = 0; i < 3; ++i) co_await sleep(0s);  // the watch reads "hello" into the buffer
    std::string first = co_await link.server.first.read(100);
    EXPECT_EQ(first, "hello");
    Task<std::string> reading = create_task(link.server.first.read(100));
    for (int i = 0; i < 3; ++i) co_await sleep(0s);  // the reader waits, beside the watch
    link.client.second.write("world");
    std::string second = co_await reading;
    EXPECT_EQ(second, "world");
    link.client.second.write_eof();
    std::string end = co_await link.server.first.read(100);
    EXPECT_EQ(end, "");
    for (int i = 0; i < 3; ++i) co_await sleep(0s);
    EXPECT_FALSE(waiting.done()) << "an end of stream leaves the connection open";
    link.server.second.close();
    co_await waiting;
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}
