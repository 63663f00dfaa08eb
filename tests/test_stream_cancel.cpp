// Cancellation and timeouts of stream I/O: no byte lost, no operation left behind in the
// backend, no fd leaked.
#include <optional>
#include <string>
#include <vector>

#include <corio/testing.hpp>

#include "stream_support.hpp"

using namespace corio;
using namespace corio_test;
using namespace std::chrono_literals;

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
