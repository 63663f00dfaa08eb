// Stream and server edges (docs/reference/streams.md, server.md): an unconnected or moved-from
// StreamReader (reads throw "this stream is not connected", at_eof() true), an unconnected
// StreamWriter (closing, close() a no-op, write() refused), write() after close()/write_eof(),
// LimitOverrunError::consumed for readuntil past the limit, the drain() water marks (default
// 64 KiB / 16 KiB, low = high / 4), and a server on the empty host listening on 0.0.0.0.
#include <corio/testing.hpp>

#include "stream_support.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace corio_test;

namespace {

// Awaits the read `make()` builds and returns the logic_error's text ("no exception" if none).
template <class F>
Coro<std::string> read_error(F make) {
    std::string out = "no exception";
    try {
        auto op = make();
        co_await std::move(op);
    } catch (const std::logic_error& e) {
        out = e.what();
    }
    co_return out;
}

// Every kind of read on `r`: each must throw "this stream is not connected".
Coro<> expect_every_read_refused(StreamReader* r) {
    std::array<char, 16> buf{};
    const char* kinds[] = {"read", "read_into", "readline", "readexactly", "readuntil"};
    for (int kind = 0; kind < 5; ++kind) {
        auto make = [r, kind, &buf]() -> Coro<> {
            switch (kind) {
                case 0: {
                    Coro<std::string> op = r->read(10);
                    (void)co_await std::move(op);
                    break;
                }
                case 1: {
                    Coro<std::size_t> op = r->read_into(buf);
                    (void)co_await std::move(op);
                    break;
                }
                case 2: {
                    Coro<std::string> op = r->readline();
                    (void)co_await std::move(op);
                    break;
                }
                case 3: {
                    Coro<std::string> op = r->readexactly(3);
                    (void)co_await std::move(op);
                    break;
                }
                default: {
                    Coro<std::string> op = r->readuntil("\n");
                    (void)co_await std::move(op);
                    break;
                }
            }
        };
        Coro<std::string> trying = read_error(make);
        std::string error = co_await std::move(trying);
        EXPECT_NE(error.find("this stream is not connected"), std::string::npos) << kinds[kind] << ": " << error;
    }
}

Coro<Server> serve_on_empty_host(ClientHandler handler) { return start_server(std::move(handler), "", 0); }

}  // namespace

// streams.md:118,123: a default StreamReader: reads throw "this stream is not connected", at_eof().
CORIO_TEST(StreamEdges, DefaultReaderRefusesReadsAndIsAtEof) {
    StreamReader reader;
    EXPECT_FALSE(bool(reader));
    EXPECT_TRUE(reader.at_eof());
    Coro<> checking = expect_every_read_refused(&reader);
    co_await std::move(checking);
}

// streams.md:118,123: a moved-from StreamReader: reads throw "this stream is not connected", at_eof().
CORIO_TEST(StreamEdges, MovedFromReaderRefusesReadsAndIsAtEof) {
    Coro<StreamLink> linking = stream_link();
    StreamLink link = co_await std::move(linking);
    StreamReader taken = std::move(link.client.first);
    StreamReader& moved_from = link.client.first;
    EXPECT_TRUE(bool(taken));
    EXPECT_FALSE(taken.at_eof());
    EXPECT_TRUE(moved_from.at_eof());
    Coro<> checking = expect_every_read_refused(&moved_from);
    co_await std::move(checking);
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

// streams.md:166-167,179,184: an unconnected StreamWriter is_closing(), close() no-op, write() throws.
CORIO_TEST(StreamEdges, UnconnectedWriterIsClosingAndCloseIsANoOp) {
    StreamWriter writer;
    EXPECT_FALSE(bool(writer));
    EXPECT_TRUE(writer.is_closing());
    EXPECT_NO_THROW(writer.close());
    EXPECT_NO_THROW(writer.close());
    EXPECT_TRUE(writer.is_closing());
    EXPECT_THROW(writer.write("x"), std::logic_error);
    co_return;
}

// streams.md:166-167: write() after close() or after write_eof() throws std::logic_error.
CORIO_TEST(StreamEdges, WriteAfterCloseOrWriteEofThrowsLogicError) {
    Coro<StreamLink> linking = stream_link();
    StreamLink link = co_await std::move(linking);
    link.client.second.write_eof();
    EXPECT_THROW(link.client.second.write("late"), std::logic_error);
    link.server.second.close();
    EXPECT_TRUE(link.server.second.is_closing());
    EXPECT_THROW(link.server.second.write("late"), std::logic_error);
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

// On a connection already lost, write_eof() is a no-op, as asyncio's on a closing transport:
// later writes are dropped as after the loss, not refused as after write_eof().
CORIO_TEST(StreamEdges, WriteEofOnALostConnectionLeavesLaterWritesDropped) {
    auto [mine, peer] = unix_socket_pair();
    StreamPair ours = make_streams(std::move(mine));
    peer.close();
    std::optional<std::system_error> lost;
    ours.second.write("into the void");
    try {
        Coro<> draining = ours.second.drain();
        co_await std::move(draining);
    } catch (const std::system_error& e) {
        lost.emplace(e);
    }
    CO_ASSERT_TRUE(lost.has_value());
    ours.second.write_eof();
    EXPECT_NO_THROW(ours.second.write("after"));
    ours.second.close();
    co_await ours.second.wait_closed();
}

// streams.md:114-116,228-229: readuntil's LimitOverrunError::consumed is asyncio's (sep offset / len+1-seplen).
CORIO_TEST(StreamEdges, ReaduntilLimitOverrunReportsConsumed) {
    Coro<StreamLink> linking = stream_link(/*client_limit=*/16);
    StreamLink link = co_await std::move(linking);
    auto& reader = link.client.first;
    auto& peer = link.server.second;
    peer.write(std::string(20, 'y') + "\n");
    CO_CATCH(LimitOverrunError, found, reader.readuntil("\n"));
    CO_ASSERT_TRUE(found.has_value());
    EXPECT_EQ(found->consumed, 20u);  // the separator starts at offset 20
    Coro<std::string> reading = reader.readexactly(21);
    std::string line = co_await std::move(reading);
    EXPECT_EQ(line, std::string(20, 'y') + "\n");

    peer.write(std::string(40, 'x'));
    CO_CATCH(LimitOverrunError, not_found, reader.readuntil("\r\n"));
    CO_ASSERT_TRUE(not_found.has_value());
    EXPECT_EQ(not_found->consumed, 39u);  // 40 buffered + 1 - 2
    Coro<std::string> reading_rest = reader.readexactly(40);
    std::string rest = co_await std::move(reading_rest);
    EXPECT_EQ(rest, std::string(40, 'x'));
    Coro<> closing = close_link(std::move(link));
    co_await std::move(closing);
}

namespace {

Coro<> ticks(int n) {
    for (int i = 0; i < n; ++i) {
        auto t = sleep(std::chrono::milliseconds(0));
        co_await std::move(t);
    }
}

// Fills the socket of a writer whose peer does not read, then buffers exactly `high`: drain()
// does not wait; one more byte and it waits, until the peer's reads bring the buffer down to
// `low` (not merely under `high`). `set_high`: call set_write_buffer_limits(high) first.
Coro<> check_water_marks(std::size_t high, std::size_t low, bool set_high) {
    auto [mine, peer] = unix_socket_pair();
    int small = 4096;
    ::setsockopt(mine.fileno(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(peer.fileno(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    StreamPair streams = make_streams(std::move(mine));
    StreamWriter& w = streams.second;
    if (set_high) w.set_write_buffer_limits(high);
    for (int i = 0; i < 10000 && w.get_write_buffer_size() == 0; ++i) w.write(std::string(256, 'f'));
    const std::size_t queued = w.get_write_buffer_size();
    CO_ASSERT_GT(queued, 0u);  // the socket is full: what follows stays buffered
    CO_ASSERT_LT(queued, high);
    w.write(std::string(high - queued, 'g'));
    CO_ASSERT_EQ(w.get_write_buffer_size(), high);
    Task<> at_high = create_task(w.drain());
    Coro<> settling = ticks(5);
    co_await std::move(settling);
    EXPECT_TRUE(at_high.done()) << "drain() waited with exactly the high water mark buffered";
    co_await at_high;

    w.write("h");
    Task<> above = create_task(w.drain());
    Coro<> settling2 = ticks(5);
    co_await std::move(settling2);
    EXPECT_FALSE(above.done()) << "drain() did not wait with high + 1 buffered";
    bool waited_between_marks = false;
    std::size_t size_when_done = 0;
    std::array<char, 1024> sink;
    for (int i = 0; i < 100000 && !above.done(); ++i) {
        (void)::recv(peer.fileno(), sink.data(), sink.size(), MSG_DONTWAIT);
        Coro<> step = ticks(2);
        co_await std::move(step);
        std::size_t now = w.get_write_buffer_size();
        if (above.done()) size_when_done = now;
        else if (now <= high && now > low) waited_between_marks = true;
        else EXPECT_GT(now, low) << "drain() still waits at or under the low water mark";
    }
    CO_ASSERT_TRUE(above.done());
    co_await above;
    EXPECT_TRUE(waited_between_marks) << "drain() ended as soon as the buffer went under the high mark";
    EXPECT_LE(size_when_done, low);
    EXPECT_GT(size_when_done, 0u) << "drain() waited for an empty buffer, not for the low water mark";

    w.close();
    for (int i = 0; i < 100000; ++i) {  // let the rest through to the peer, then close
        ssize_t n = ::recv(peer.fileno(), sink.data(), sink.size(), MSG_DONTWAIT);
        if (n == 0) break;
        Coro<> step = ticks(1);
        co_await std::move(step);
    }
    Coro<> waiting = w.wait_closed();
    co_await std::move(waiting);
}

}  // namespace

// streams.md:199-200: the default water marks are 64 KiB and 16 KiB.
CORIO_TEST(StreamEdges, DefaultWaterMarksAre64KiBAnd16KiB) {
    Coro<> checking = check_water_marks(64 * 1024, 16 * 1024, /*set_high=*/false);
    co_await std::move(checking);
}

// streams.md:199-200: set_write_buffer_limits(high) without low sets low to high / 4.
CORIO_TEST(StreamEdges, LowWaterMarkDefaultsToAQuarterOfHigh) {
    Coro<> checking = check_water_marks(40 * 1024, 10 * 1024, /*set_high=*/true);
    co_await std::move(checking);
}

// server.md:25: an empty host listens on 0.0.0.0 only (one IPv4 socket), reached via 127.0.0.1.
CORIO_TEST(ServerHost, EmptyHostListensOnAllIPv4Addresses) {
    Coro<Server> starting = serve_on_empty_host(echo_handler);
    Server server = co_await std::move(starting);
    CO_ASSERT_EQ(server.sockets().size(), 1u);
    SocketAddress bound = server.sockets()[0].getsockname();
    EXPECT_EQ(bound.family(), AF_INET);
    EXPECT_EQ(bound.host(), "0.0.0.0");
    CO_ASSERT_NE(bound.port(), 0);
    Coro<StreamPair> connecting = connect_local(bound.port());
    StreamPair client = co_await std::move(connecting);
    client.second.write("ping\n");
    Coro<std::string> reading = client.first.readline();
    std::string echoed = co_await std::move(reading);
    EXPECT_EQ(echoed, "ping\n");
    Coro<> closing = client.second.aclose();
    co_await std::move(closing);
    Coro<> stopping = server.aclose();
    co_await std::move(stopping);
}

namespace {
Coro<std::vector<std::string>> lines_until_at_eof(StreamReader reader) {
    std::vector<std::string> lines;
    while (!reader.at_eof()) {
        Coro<std::string> line = reader.readline();
        lines.push_back(co_await std::move(line));
    }
    co_return lines;
}
}  // namespace

// streams.md (at_eof, asyncio's `while not reader.at_eof(): await reader.readline()`): the peer's
// end that came right behind its last data is seen once that data is read, as asyncio's
// transport, reading ahead, has seen it: no extra empty line (there was one, from the read that
// found the end). The data is written and the end sent before the first read.
CORIO_TEST(StreamEdges, AtEofIsTrueOnceTheDataBeforeThePeersEndIsRead) {
    auto [a, b] = unix_socket_pair();
    CO_ASSERT_EQ(::write(b.fileno(), "a\nb\n", 4), 4);
    b.close();
    Coro<std::vector<std::string>> reading = lines_until_at_eof(make_streams(std::move(a)).first);
    std::vector<std::string> lines = co_await std::move(reading);
    EXPECT_EQ(lines, (std::vector<std::string>{"a\n", "b\n"}));
}

// at_eof() while another task waits in a read asks nothing of the fd (that read takes what comes).
CORIO_TEST(StreamEdges, AtEofWhileAReadWaitsIsFalseAndTakesNothing) {
    auto [a, b] = unix_socket_pair();
    StreamPair ours = make_streams(std::move(a));
    Task<std::string> reading = create_task(ours.first.read(100));
    auto started = sleep(std::chrono::milliseconds(0));
    co_await std::move(started);
    Coro<> sending = sock_sendall(b, "x");
    co_await std::move(sending);
    EXPECT_FALSE(ours.first.at_eof());
    std::string got = co_await reading;
    EXPECT_EQ(got, "x");
}

// make_streams over a blocking socket (a socketpair() made by hand): the loop blocked in the
// first read that found nothing, for good. asyncio's open_connection(sock=) makes the socket
// non-blocking; so does make_streams.
CORIO_TEST(StreamEdges, MakeStreamsMakesABlockingSocketNonBlocking) {
    int fds[2];
    CO_ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    Socket peer(fds[1]);
    const int fd = fds[0];
    EXPECT_EQ(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    StreamPair streams = make_streams(Socket(fd));
    CO_ASSERT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);  // else the read below blocks the loop
    Coro<std::string> nothing_yet = streams.first.read(10);
    auto limited = wait_for(std::move(nothing_yet), std::chrono::milliseconds(20));
    CO_CATCH(TimeoutError, timed_out, std::move(limited));
    EXPECT_TRUE(timed_out.has_value());
    streams.second.close();
}

// A readline() waiting for its separator while another task takes bytes it had buffered (which
// streams.md allows): its search went on from where it had stopped, now past the front that had
// moved, so it missed a separator that came (and hung, or merged two lines). asyncio's
// readuntil() has the same flaw (found by the streams audit).
CORIO_TEST(StreamEdges, AWaitingReadlineFindsItsSeparatorAfterAnotherTaskTookBufferedBytes) {
    auto [a, b] = unix_socket_pair();
    StreamPair ours = make_streams(std::move(a));
    CO_ASSERT_EQ(::write(b.fileno(), "abcdef", 6), 6);
    Task<std::string> line = create_task(ours.first.readline());
    for (int i = 0; i < 3; ++i) {  // it reads "abcdef" and waits for more
        auto step = sleep(std::chrono::milliseconds(0));
        co_await std::move(step);
    }
    CO_ASSERT_FALSE(line.done());
    std::string taken = co_await ours.first.read(5);  // served from the buffer
    EXPECT_EQ(taken, "abcde");
    CO_ASSERT_EQ(::write(b.fileno(), "\n", 1), 1);
    auto got = wait_for(std::move(line), std::chrono::seconds(5));
    std::string rest = co_await std::move(got);
    EXPECT_EQ(rest, "f\n");
}
