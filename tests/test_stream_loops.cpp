// A stream belongs to the loop it was made on: several loops one after another, and a write
// kept back when its loop ends.
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
