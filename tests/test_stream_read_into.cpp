// StreamReader::read_into: the caller's buffer first, what does not fit kept in order for every
// later read call, cancellation, pipes.
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include <corio/testing.hpp>

#include "stream_support.hpp"

using namespace corio;
using namespace corio_test;
using namespace std::chrono_literals;

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
