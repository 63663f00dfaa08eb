// StreamWriter over real loopback sockets: half-close, drain and the water marks, writes kept
// back while input is buffered, close and what the peer sees.
#include <poll.h>
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
