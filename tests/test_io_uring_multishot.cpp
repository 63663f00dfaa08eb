// io_uring's multishot receives into provided buffers, seen through the streams: bytes queued
// in the ring's buffers come out exactly and in order, then the end (EOF or the error); one
// reader that stops reading takes neither the ring nor TCP's back-pressure away from the
// others; closing gives every buffer back and a reused fd number inherits nothing; a dry ring
// falls back to plain reads. Real loopback sockets (127.0.0.1) only. The test binary asks for
// io_uring itself, and each test is skipped where the kernel forbids it or refuses the ring.
#include <corio/backend.hpp>
#include <corio/socket.hpp>
#include <corio/streams.hpp>
#include <corio/sleep.hpp>
#include <corio/subprocess.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>
#include <corio/timeouts.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <span>
#include <utility>
#include <string>
#include <system_error>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

// Every loop of this binary runs on io_uring with provided buffers when io_uring exists here
// (the suite runs under both CORIO_BACKEND values; this file is about io_uring only).
const bool g_io_uring_chosen = [] {
    if (make_io_uring_backend()) ::setenv("CORIO_BACKEND", "io_uring", 1);
    ::setenv("CORIO_IO_URING_BUFFERS", "on", 0);
    return true;
}();

detail::ProvidedBufferStats ring() { return detail::provided_buffer_stats(get_running_loop().backend()); }

// GTEST_SKIP() is a `return`, which a coroutine cannot have: skip from a lambda, then co_return.
#define CO_SKIP_WITHOUT_RING()                                                                    \
    if (!ring().available) {                                                                      \
        [&] { GTEST_SKIP() << "io_uring or its provided-buffer ring is not available here"; }(); \
        co_return;                                                                                \
    }

// Awaits `expr` bound to a named local first (g++ 12 destroys temporaries of a co_await
// operand too early, compiler-bugs.md G2).
#define AWAIT(var, ...)                  \
    auto var##_op_ = (__VA_ARGS__);      \
    auto var = co_await std::move(var##_op_)
#define AWAIT_VOID(...)                       \
    {                                         \
        auto corio_op_ = (__VA_ARGS__);       \
        co_await std::move(corio_op_);        \
    }

struct Fd {
    int fd = -1;
    explicit Fd(int f = -1) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        std::swap(fd, o.fd);
        return *this;
    }
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

void check(bool ok, const char* what) {
    if (!ok) throw std::system_error(errno, std::generic_category(), what);
}

// A connection on 127.0.0.1 half made: the peer's side (a plain blocking socket that the test
// drives with syscalls) is connected; accept() makes ours, which then takes the lowest free fd.
struct HalfPair {
    Fd listener;
    Fd peer;
    HalfPair() {
        listener.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        check(listener.fd >= 0, "socket");
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        check(::bind(listener.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind");
        check(::listen(listener.fd, 4) == 0, "listen");
        socklen_t len = sizeof a;
        check(::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&a), &len) == 0, "getsockname");
        peer.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        check(peer.fd >= 0, "socket");
        check(::connect(peer.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "connect");
    }
    Socket accept() {
        int fd = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        check(fd >= 0, "accept4");
        return Socket(fd);
    }
};

struct Conn {
    Fd peer;
    int fd = -1;  // ours
    StreamReader reader;
    StreamWriter writer;
};

Conn connect_from(HalfPair& h) {
    Socket s = h.accept();
    Conn c;
    c.fd = s.fileno();
    c.peer = std::move(h.peer);
    auto [r, w] = make_streams(std::move(s));
    c.reader = r;
    c.writer = w;
    return c;
}

Conn connect_pair() {
    HalfPair h;
    return connect_from(h);
}

void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        check(n > 0, "send");
        data.remove_prefix(std::size_t(n));
    }
}

// Bytes that say where they are: a misplaced or repeated piece shows.
std::string pattern(std::size_t from, std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = char('a' + (from + i) % 23 + (from + i) / 23 % 3);
    return s;
}

// A read that waits (the socket is empty as it starts) arms the socket's multishot receive.
Coro<> arm(Conn& c) {
    Task<std::string> first = create_task(c.reader.readexactly(1));
    AWAIT_VOID(sleep(0s));  // the task starts, finds nothing and waits
    send_all(c.peer.fd, "!");
    AWAIT(got, first);
    EXPECT_EQ(got, "!");
}

}  // namespace

CORIO_TEST(IoUringMultishot, QueuedBytesAreReadExactlyAndInOrder) {
    CO_SKIP_WITHOUT_RING();
    Conn c = connect_pair();
    AWAIT_VOID(arm(c));
    EXPECT_EQ(ring().armed, 1u);
    // Several sends, more than one buffer's worth, all there before the next read.
    const std::string big = pattern(0, 40000);
    send_all(c.peer.fd, "line one\n");
    send_all(c.peer.fd, "line two\nrest");
    send_all(c.peer.fd, big);
    send_all(c.peer.fd, "tail");
    AWAIT(r1, c.reader.readline());
    EXPECT_EQ(r1, "line one\n");
    EXPECT_GT(ring().taken, 0u) << "the rest should wait in the ring's buffers";
    AWAIT(r2, c.reader.readline());
    EXPECT_EQ(r2, "line two\n");
    AWAIT(r3, c.reader.readexactly(4));
    EXPECT_EQ(r3, "rest");
    std::string got;
    std::vector<char> buffer(1000);
    while (got.size() < 20000) {
        AWAIT(n, c.reader.read_into(std::span<char>(buffer.data(), std::min<std::size_t>(1000, 20000 - got.size()))));
        if (n == 0) break;
        got.append(buffer.data(), n);
    }
    AWAIT(second_half, c.reader.readexactly(20000));
    got += second_half;
    EXPECT_TRUE(got == big) << "the bytes came out of order";
    AWAIT(r4, c.reader.read(100));
    EXPECT_EQ(r4, "tail");
    ::shutdown(c.peer.fd, SHUT_WR);
    AWAIT(r5, c.reader.read(100));
    EXPECT_EQ(r5, "");
    EXPECT_TRUE(c.reader.at_eof());
    EXPECT_EQ(ring().taken, 0u) << "every buffer read goes back to the ring";
    c.writer.close();
}

CORIO_TEST(IoUringMultishot, EofComesAfterEveryQueuedByte) {
    CO_SKIP_WITHOUT_RING();
    Conn c = connect_pair();
    AWAIT_VOID(arm(c));
    const std::string data = pattern(7, 50000);
    send_all(c.peer.fd, data.substr(0, 30000));
    send_all(c.peer.fd, data.substr(30000));
    ::close(std::exchange(c.peer.fd, -1));
    AWAIT(r6, c.reader.readexactly(10));
    EXPECT_EQ(r6, data.substr(0, 10));
    AWAIT(rest, c.reader.read());  // to EOF
    EXPECT_TRUE(rest == data.substr(10)) << rest.size() << " bytes instead of " << data.size() - 10;
    EXPECT_TRUE(c.reader.at_eof());
    EXPECT_EQ(ring().taken, 0u);
    c.writer.close();
}

CORIO_TEST(IoUringMultishot, ResetAfterQueuedDataGivesTheDataThenTheError) {
    CO_SKIP_WITHOUT_RING();
    Conn c = connect_pair();
    AWAIT_VOID(arm(c));
    send_all(c.peer.fd, "hello");
    linger hard{1, 0};  // close() sends RST
    ::setsockopt(c.peer.fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    ::close(std::exchange(c.peer.fd, -1));
    AWAIT(r7, c.reader.readexactly(5));
    EXPECT_EQ(r7, "hello");
    int code = 0;
    try {
        AWAIT(more, c.reader.read(10));
        ADD_FAILURE() << "read " << more.size() << " bytes after a reset";
    } catch (const std::system_error& e) {
        code = e.code().value();
    }
    EXPECT_EQ(code, ECONNRESET);
    EXPECT_EQ(ring().taken, 0u);
    c.writer.close();
}

CORIO_TEST(IoUringMultishot, ReaderThatStopsReadingStallsNobodyAndKeepsBackPressure) {
    CO_SKIP_WITHOUT_RING();
    Conn idle = connect_pair();
    Conn busy = connect_pair();
    AWAIT_VOID(arm(idle));
    AWAIT_VOID(arm(busy));
    // The idle reader's peer writes as long as the kernel takes it; between two writes the busy
    // connection makes a round trip (its read waits in the backend, which so reaps the idle
    // socket's completions too).
    const std::string chunk = pattern(0, 16384);
    std::size_t sent = 0;
    bool blocked = false;
    std::size_t most_taken = 0;
    for (int i = 0; i < 4096 && !blocked; ++i) {
        std::string piece = pattern(sent, chunk.size());
        ssize_t n = ::send(idle.peer.fd, piece.data(), piece.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            check(errno == EAGAIN || errno == EWOULDBLOCK, "send");
            blocked = true;
        } else {
            sent += std::size_t(n);
        }
        send_all(busy.peer.fd, "ping");
        AWAIT(pong, busy.reader.readexactly(4));
        EXPECT_EQ(pong, "ping");
        most_taken = std::max(most_taken, ring().taken);
    }
    EXPECT_TRUE(blocked) << "the idle reader's peer never felt back-pressure (" << sent << " bytes taken)";
    // The per-socket cap (256 KiB), plus what arrives before its cancellation lands.
    EXPECT_LE(most_taken * ring().buffer_size, 256 * 1024 + 4 * ring().buffer_size)
        << "one idle reader held " << most_taken << " of " << ring().buffers << " buffers";
    EXPECT_LT(most_taken, ring().buffers);
    // Nothing was lost on the way: the idle reader reads it all, in order.
    std::string got;
    while (got.size() < sent) {
        AWAIT(piece, idle.reader.read(65536));
        if (piece.empty()) break;
        got += piece;
    }
    EXPECT_EQ(got.size(), sent);
    EXPECT_TRUE(got == pattern(0, sent)) << "the bytes came out of order";
    EXPECT_EQ(ring().taken, 0u);
    idle.writer.close();
    busy.writer.close();
}

namespace {
Coro<> close_then_reuse_the_fd() {

    Conn old = connect_pair();
    HalfPair next;  // made now, so that its accepted socket takes the fd number closed below
    AWAIT_VOID(arm(old));
    send_all(old.peer.fd, pattern(0, 40000));
    AWAIT(r8, old.reader.readexactly(10));
    EXPECT_EQ(r8, pattern(0, 10));
    EXPECT_GT(ring().taken, 0u);
    send_all(old.peer.fd, "OLD BYTES");  // may be in flight in the kernel as the fd closes
    const int old_fd = old.fd;
    old.writer.close();
    EXPECT_EQ(ring().taken, 0u) << "buffers of a closed socket were not given back";
    EXPECT_EQ(ring().armed, 0u);
    Conn reused = connect_from(next);
    EXPECT_EQ(reused.fd, old_fd) << "the fd number was not reused (the test is weaker then)";
    send_all(reused.peer.fd, "new");
    AWAIT(r9, reused.reader.read(100));
    EXPECT_EQ(r9, "new");
    send_all(reused.peer.fd, "er");
    AWAIT(r10, reused.reader.read(100));
    EXPECT_EQ(r10, "er");
    EXPECT_EQ(ring().taken, 0u);
    reused.writer.close();
}
}  // namespace

CORIO_TEST(IoUringMultishot, CloseGivesBuffersBackAndAReusedFdGetsNoneOfTheOldBytes) {
    CO_SKIP_WITHOUT_RING();
    AWAIT_VOID(close_then_reuse_the_fd());
}

// Without deferred task work, the old socket's receive completes as soon as this thread makes
// any syscall (the peer's send below), so its completion is still unread when the fd closes:
// it must not be credited to the socket that takes the fd number next.
class IoUringEagerCompletions : public corio::testing::AsyncTest {
public:
    void SetUp() override { ::setenv("CORIO_IO_URING_DEFER_TASKRUN", "0", 1); }
    void TearDown() override { ::unsetenv("CORIO_IO_URING_DEFER_TASKRUN"); }
};

CORIO_TEST_F(IoUringEagerCompletions, AReusedFdGetsNoneOfTheOldBytes) {
    CO_SKIP_WITHOUT_RING();
    AWAIT_VOID(close_then_reuse_the_fd());
}

CORIO_TEST(IoUringMultishot, CancelledWaitingReadLosesNothing) {
    CO_SKIP_WITHOUT_RING();
    Conn c = connect_pair();
    AWAIT_VOID(arm(c));
    bool timed_out = false;
    try {
        AWAIT(never, wait_for(c.reader.read(10), 20ms));  // nothing comes: the read is cancelled
        ADD_FAILURE() << "read " << never.size() << " bytes";
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    send_all(c.peer.fd, "after");
    AWAIT(r11, c.reader.readexactly(5));
    EXPECT_EQ(r11, "after");
    c.writer.close();
}

// A ring of four 1 KiB buffers runs dry at once: the multishot receives end with ENOBUFS and
// the sockets are read by plain reads until buffers come back.
class IoUringTinyRing : public corio::testing::AsyncTest {
public:
    void SetUp() override { ::setenv("CORIO_IO_URING_BUFFERS", "4x1024", 1); }
    void TearDown() override { ::setenv("CORIO_IO_URING_BUFFERS", "on", 1); }
};

CORIO_TEST_F(IoUringTinyRing, DryRingFallsBackAndDeliversEveryByte) {
    CO_SKIP_WITHOUT_RING();
    EXPECT_EQ(ring().buffers, 4u);
    Conn a = connect_pair();
    Conn b = connect_pair();
    AWAIT_VOID(arm(a));
    AWAIT_VOID(arm(b));
    const std::string data = pattern(3, 60000);
    send_all(a.peer.fd, data.substr(0, 20000));
    send_all(b.peer.fd, "b1");
    AWAIT(r12, b.reader.readexactly(2));
    EXPECT_EQ(r12, "b1");
    send_all(a.peer.fd, data.substr(20000));
    AWAIT(got, a.reader.readexactly(data.size()));
    EXPECT_TRUE(got == data) << "the bytes came out of order";
    EXPECT_GE(ring().nobufs, 1u) << "the ring never ran dry: the test did not test the fallback";
    // Buffers came back: the multishot is armed again at the next wait, and works.
    for (int i = 0; i < 3; ++i) {
        std::string word = "again" + std::to_string(i);
        send_all(a.peer.fd, word);
        AWAIT(r13, a.reader.readexactly(word.size()));
        EXPECT_EQ(r13, word);
    }
    send_all(b.peer.fd, "b2");
    AWAIT(r14, b.reader.readexactly(2));
    EXPECT_EQ(r14, "b2");
    EXPECT_EQ(ring().taken, 0u);
    a.writer.close();
    b.writer.close();
}

CORIO_TEST(IoUringMultishot, PipesKeepTheirPlainReads) {
    CO_SKIP_WITHOUT_RING();
    AWAIT(p, create_subprocess_exec({"/bin/sh", "-c", "printf 'one\\ntwo\\n'; cat"}, {.in = PIPE, .out = PIPE}));
    AWAIT(outputs, p.communicate("three\n"));
    EXPECT_EQ(outputs.first, "one\ntwo\nthree\n");
    EXPECT_EQ(ring().armed, 0u);
    AWAIT(code, p.wait());
    EXPECT_EQ(code, 0);
}

// A readiness wait and a read waiting together on one socket (wait_closed() watching it while
// a reader reads): when the receive ended under them, the read armed it again and joined the
// list of waiters being resubmitted, which looped for ever at 100 % CPU.
CORIO_TEST(IoUringMultishot, AReadinessWaitBesideAWaitingReadLetsBothComplete) {
    CO_SKIP_WITHOUT_RING();
    Conn c = connect_pair();
    Coro<> arming = arm(c);
    co_await std::move(arming);
    Task<> watching = create_task(c.writer.wait_closed());
    Task<std::string> reading = create_task(c.reader.read(100));  // in the same loop tick
    for (int i = 0; i < 3; ++i) co_await sleep(0s);
    send_all(c.peer.fd, "one");
    AWAIT(one, reading);
    EXPECT_EQ(one, "one");
    Task<std::string> next = create_task(c.reader.read(100));
    for (int i = 0; i < 3; ++i) co_await sleep(0s);
    check(::shutdown(c.peer.fd, SHUT_WR) == 0, "shutdown");
    AWAIT(end, wait_for(std::move(next), 10s));
    EXPECT_EQ(end, "");
    EXPECT_FALSE(watching.done());
    c.writer.close();
    co_await watching;
}

// A raw socket's reads take no more than asked for: Socket::release() may give its fd to other
// code, which must find every byte nobody read still in the socket (a multishot receive armed
// by sock_recv had taken them into the ring, where they were lost).
CORIO_TEST(IoUringMultishot, ARawSocketKeepsItsUnreadBytesForWhoeverTakesItsFd) {
    CO_SKIP_WITHOUT_RING();
    HalfPair h;
    Socket ours = h.accept();
    Task<std::string> first = create_task(sock_recv(ours, 1));
    AWAIT_VOID(sleep(0s));  // the receive starts, finds nothing and waits
    send_all(h.peer.fd, "!rest");
    AWAIT(got, first);
    EXPECT_EQ(got, "!");
    EXPECT_EQ(ring().armed, 0u);
    Fd released(ours.release());
    char buffer[16];
    ssize_t n = ::recv(released.fd, buffer, sizeof buffer, MSG_DONTWAIT);
    CO_ASSERT_EQ(n, 4);
    EXPECT_EQ(std::string_view(buffer, 4), "rest");
}

// A value the kernel can never give was taken silently as "no buffers" (a typo in a benchmark's
// environment turned the feature off unseen); it is refused, as a bad CORIO_BACKEND is.
TEST(IoUringBuffersSetting, AValueThatCannotBeMetIsRefused) {
    ::setenv("CORIO_IO_URING_BUFFERS", "off", 1);
    std::unique_ptr<IoBackend> plain = make_io_uring_backend();
    if (!plain) {
        ::setenv("CORIO_IO_URING_BUFFERS", "on", 1);
        GTEST_SKIP() << "io_uring is not available here";
    }
    for (const char* bad : {"100x4096", "0x4096", "8x0", "65536x65536", "garbage", "16x4096junk", "x", "on "}) {
        ::setenv("CORIO_IO_URING_BUFFERS", bad, 1);
        EXPECT_THROW(make_io_uring_backend(), std::invalid_argument) << bad;
    }
    for (const char* good : {"0", "off", "on", "8x4096"}) {
        ::setenv("CORIO_IO_URING_BUFFERS", good, 1);
        EXPECT_NO_THROW(make_io_uring_backend()) << good;
    }
    ::setenv("CORIO_IO_URING_BUFFERS", "on", 1);
}
