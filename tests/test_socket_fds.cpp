// Sockets and their fds: a socket or datagram endpoint closed between runs, or a socket released
// to a new owner who closes it, leaves the backend nothing stale for the next file with that
// number; an operation refused as it is submitted; every queued datagram received; a sock_* call
// made before a close() fails with EBADF; and operations waiting on one socket served in the
// order they came; a socket moved to another loop (or thread), or released from another thread
// while its loop runs, leaves that loop nothing stale either. Loopback and Unix socket pairs only.
#include <corio/datagram.hpp>
#include <corio/streams.hpp>
#include <corio/socket.hpp>
#include <corio/testing.hpp>

#include "net_support.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <latch>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

// --------------------------------------------------------------------------------------------
// An fd number that comes back for a new socket is a new file to the backend

namespace {

using corio_test::unix_socket_pair;

// A receive that waits (so that the backend knows the fd), then gives up.
Coro<> recv_then_give_up(Socket* s) {
    Task<std::string> receiving = create_task(sock_recv(*s, 10));
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);
    receiving.cancel();
    try {
        co_await receiving;
    } catch (const CancelledError&) {
    }
}

// On a new pair whose first socket should get `expected_fd` (unless -1): what a waiting receive
// gets.
Coro<std::string> recv_on_a_new_pair(int expected_fd) {
    corio::testing::MockClock clock;  // a hang shows as a timeout, at once
    auto [a, b] = unix_socket_pair();
    if (expected_fd >= 0) {
        EXPECT_EQ(a.fileno(), expected_fd) << "the new socket should reuse the number";
    }
    Task<std::string> receiving = create_task(sock_recv(a, 10));
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);
    Coro<> sending = sock_sendall(b, "hello");
    co_await std::move(sending);
    Coro<std::string> bounded = wait_for(std::move(receiving), 5s);
    try {
        co_return co_await std::move(bounded);
    } catch (const TimeoutError&) {
        co_return "timeout";
    } catch (const std::system_error& e) {
        co_return e.what();
    }
}

struct SocketHolder {
    Socket s;
    Socket peer;
};

Coro<> open_and_wait_once(SocketHolder* h) {
    auto [a, b] = unix_socket_pair();
    h->s = std::move(a);
    h->peer = std::move(b);
    Coro<> waiting = recv_then_give_up(&h->s);
    co_await std::move(waiting);
}

}  // namespace

TEST(SocketClose, ASocketClosedBetweenRunsLeavesTheBackendNothingStale) {
    Runner runner;
    SocketHolder h;
    runner.run(open_and_wait_once(&h));
    int fd = h.s.fileno();
    h.s.close();  // while the loop does not run: its backend must forget the fd all the same
    h.peer.close();
    std::string got = runner.run(recv_on_a_new_pair(fd));
    EXPECT_EQ(got, "hello");
}


namespace {
Coro<> recvfrom_then_give_up(DatagramEndpoint* ep) {
    corio::testing::MockClock clock;
    Coro<std::pair<std::string, SocketAddress>> receiving = ep->recvfrom();
    Coro<std::pair<std::string, SocketAddress>> bounded = wait_for(std::move(receiving), 50ms);
    EXPECT_THROW(co_await std::move(bounded), TimeoutError);
}

Coro<std::string> datagram_on_a_new_endpoint(int expected_fd) {
    corio::testing::MockClock clock;  // a hang shows as a timeout, at once
    Socket s = Socket::create(AF_INET, SOCK_DGRAM);
    EXPECT_EQ(s.fileno(), expected_fd) << "the new socket should reuse the number";
    s.bind(SocketAddress("127.0.0.1", 0));
    DatagramEndpoint ep(std::move(s));
    DatagramOptions sender_options;
    sender_options.remote_addr = ep.getsockname();
    DatagramEndpoint sender = co_await create_datagram_endpoint(sender_options);
    Coro<> sending = sender.send("hello");
    co_await std::move(sending);
    Coro<std::pair<std::string, SocketAddress>> bounded = wait_for(ep.recvfrom(), 5s);
    try {
        auto got = co_await std::move(bounded);
        co_return got.first;
    } catch (const TimeoutError&) {
    }
    co_return "timeout";
}
}  // namespace

// The same through DatagramEndpoint, whose socket was made before any loop ran: its operations
// note the loop as sock_* do, so close() between runs still tells that loop's backend.
TEST(SocketClose, ADatagramEndpointClosedBetweenRunsLeavesTheBackendNothingStale) {
    Socket s = Socket::create(AF_INET, SOCK_DGRAM);
    s.bind(SocketAddress("127.0.0.1", 0));
    int fd = s.fileno();
    DatagramEndpoint ep(std::move(s));
    Runner runner;
    runner.run(recvfrom_then_give_up(&ep));
    ep.close();
    std::string got = runner.run(datagram_on_a_new_endpoint(fd));
    EXPECT_EQ(got, "hello");
}


namespace {
Coro<std::string> recv_once(Socket* s, Socket* peer) {
    Task<std::string> receiving = create_task(sock_recv(*s, 10));
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);  // waits in the backend: it knows the fd
    Coro<> sending = sock_sendall(*peer, "x");
    co_await std::move(sending);
    std::string got = co_await receiving;
    co_return got;
}
}  // namespace

// Socket::release() hands the fd to its new owner, who may close it with ::close: the backend
// forgot it first, so the next file with that number is not left waiting forever.
// An operation the backend refuses at once (a closed socket: epoll says EBADF when it is
// submitted) leaves the task waiting on nothing: a later cancel is delivered, not handed to the
// awaiter that went with the failed call's frame.
CORIO_TEST(SocketFaults, AnOperationRefusedAtSubmitLeavesTheTaskFreeToBeCancelled) {
    auto [a, b] = unix_socket_pair();
    a.close();
    bool refused = false;
    try {
        Coro<std::string> reading = sock_recv(a, 10);
        co_await std::move(reading);
    } catch (const std::system_error&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
    current_task().cancel();
    bool cancelled = false;
    try {
        co_await sleep(0s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    current_task().uncancel();
    EXPECT_TRUE(cancelled);
}

// A message socket gives one message a read: a read shorter than asked for does not mean the
// socket is drained (epoll used to wait for a next message that never came, with two queued).
CORIO_TEST(SocketFaults, EveryQueuedDatagramIsReceived) {
    corio::testing::MockClock clock;  // a receive that waited for a next edge would time out
    for (int type : {SOCK_DGRAM, SOCK_SEQPACKET}) {
        auto [a, b] = unix_socket_pair(type);
        Coro<std::string> idle = wait_for(sock_recv(b, 100), 1s);  // registers b with the backend
        bool timed_out = false;
        try {
            co_await std::move(idle);
        } catch (const TimeoutError&) {
            timed_out = true;
        }
        EXPECT_TRUE(timed_out);
        CO_ASSERT_EQ(::send(a.fileno(), "one", 3, 0), 3);
        CO_ASSERT_EQ(::send(a.fileno(), "two", 3, 0), 3);
        Coro<std::string> first = wait_for(sock_recv(b, 100), 5s);
        std::string got1 = co_await std::move(first);
        Coro<std::string> second = wait_for(sock_recv(b, 100), 5s);
        std::string got2 = co_await std::move(second);
        EXPECT_EQ(got1, "one") << "type " << type;
        EXPECT_EQ(got2, "two") << "type " << type;
    }
}

// A sock_* call takes the fd when it runs (asyncio's take the socket object): one made before a
// close() and run after it used to receive on the socket that got the fd number meanwhile.
CORIO_TEST(SocketFdReuse, ARecvMadeBeforeTheCloseAndRunAfterItFailsWithEbadf) {
    auto [a, b] = unix_socket_pair();
    Task<std::string> receiving = create_task(sock_recv(a, 100));
    a.close();
    auto [newcomer, peer] = unix_socket_pair();  // likely a's fd number
    CO_ASSERT_EQ(::send(peer.fileno(), "for-newcomer", 12, 0), 12);
    int error = 0;
    try {
        co_await receiving;
    } catch (const std::system_error& e) {
        error = e.code().value();
    }
    EXPECT_EQ(error, EBADF);
    char buffer[100];
    EXPECT_EQ(::recv(newcomer.fileno(), buffer, sizeof buffer, MSG_DONTWAIT), 12) << "the closed socket's receive took its bytes";
}

namespace {
Coro<> sendall_keeping_its_error(Socket* s, std::size_t size, int* error) {
    try {
        Coro<> sending = sock_sendall(*s, std::string(size, 'A'));
        co_await std::move(sending);
    } catch (const std::system_error& e) {
        *error = e.code().value();
    }
}

long read_everything_waiting(int fd) {
    char buffer[1 << 16];
    long total = 0;
    for (long n; (n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT)) > 0;) total += n;
    return total;
}
}  // namespace

// sock_sendall took the fd number once for all its sends: a close between two of them (after
// one completed, before the task resumed) sent the rest to the socket that got the number
// meanwhile, on both backends (found by the datagram and socket hunt).
CORIO_TEST(SocketFdReuse, ASendallWhoseSocketClosesBetweenTwoSendsSendsNothingMore) {
    auto [a, peer] = unix_socket_pair();
    const int a_fd = a.fileno();
    int error = 0;
    Task<> sending = create_task(sendall_keeping_its_error(&a, std::size_t(4) << 20, &error));
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);  // the buffer fills, the sendall waits
    CO_ASSERT_GT(read_everything_waiting(peer.fileno()), 0);
    // The next send goes in the tick the peer has room; this task, woken before the sender,
    // sees its bytes arrive before the sender resumes.
    char byte;
    for (int ticks = 0; ::recv(peer.fileno(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) != 1; ++ticks) {
        CO_ASSERT_LT(ticks, 100000);  // else the sendall never went on
        co_await sleep(0ms);
    }
    a.close();
    auto [newcomer, newcomer_peer] = unix_socket_pair();
    EXPECT_EQ(newcomer.fileno(), a_fd) << "the scenario needs the fd number back";
    for (int i = 0; i < 10 && !sending.done(); ++i) co_await sleep(0ms);
    EXPECT_TRUE(sending.done()) << "the sendall went on after its socket closed";
    EXPECT_EQ(error, ECANCELED);
    EXPECT_EQ(read_everything_waiting(newcomer_peer.fileno()), 0) << "the rest went to the socket that got the fd number";
    if (!sending.done()) {
        sending.cancel();
        try {
            co_await sending;
        } catch (const CancelledError&) {
        }
    }
}

// The same when the Socket itself is given the new socket (a reconnect loop's `s.close(); s =
// Socket::create(...)`): the fd number matches, but the file is another (found by review).
CORIO_TEST(SocketFdReuse, ASendallWhoseSocketIsReplacedBetweenTwoSendsSendsNothingMore) {
    auto [a, peer] = unix_socket_pair();
    int error = 0;
    Task<> sending = create_task(sendall_keeping_its_error(&a, std::size_t(4) << 20, &error));
    for (int i = 0; i < 3; ++i) co_await sleep(0ms);
    CO_ASSERT_GT(read_everything_waiting(peer.fileno()), 0);
    char byte;
    for (int ticks = 0; ::recv(peer.fileno(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) != 1; ++ticks) {
        CO_ASSERT_LT(ticks, 100000);  // else the sendall never went on
        co_await sleep(0ms);
    }
    const int old_fd = a.fileno();
    a.close();
    auto [replacement, replacement_peer] = unix_socket_pair();
    a = std::move(replacement);
    EXPECT_EQ(a.fileno(), old_fd) << "the scenario needs the fd number back";
    for (int i = 0; i < 10 && !sending.done(); ++i) co_await sleep(0ms);
    EXPECT_TRUE(sending.done());
    EXPECT_EQ(error, ECANCELED);
    EXPECT_EQ(read_everything_waiting(replacement_peer.fileno()), 0) << "the rest went to the replacement";
    if (!sending.done()) {
        sending.cancel();
        try {
            co_await sending;
        } catch (const CancelledError&) {
        }
    }
}

CORIO_TEST(SocketFdReuse, AReleasedFdClosedByItsNewOwnerDoesNotStrandTheNextFile) {
    auto [a, b] = unix_socket_pair();
    Coro<std::string> first = recv_once(&a, &b);
    std::string got_first = co_await std::move(first);
    EXPECT_EQ(got_first, "x");
    int fd = a.release();
    ::close(fd);
    b.close();
    Coro<std::string> receiving = recv_on_a_new_pair(fd);
    std::string got = co_await std::move(receiving);
    EXPECT_EQ(got, "hello");
}

namespace {
// Three receivers wait on one socket, in order, before anything arrives; then one write brings
// the bytes (stream) or three datagrams come.
Coro<std::vector<std::string>> three_waiting_receivers(int type) {
    auto [a, b] = unix_socket_pair(type);
    std::vector<Task<std::string>> receivers;
    for (int i = 0; i < 3; ++i) {
        receivers.push_back(create_task(sock_recv(b, type == SOCK_STREAM ? 1 : 100)));
        co_await sleep(0s);  // each waits before the next starts
    }
    if (type == SOCK_STREAM) {
        EXPECT_EQ(::send(a.fileno(), "123", 3, 0), 3);
    } else {
        for (const char* d : {"1", "2", "3"}) EXPECT_EQ(::send(a.fileno(), d, 1, 0), 1);
    }
    std::vector<std::string> got;
    for (auto& r : receivers) got.push_back(co_await r);
    co_return got;
}
}  // namespace

// Receivers waiting on one socket take what arrives in the order they began to wait, as on
// epoll (and in asyncio, whose sock_recv waiters queue on the fd's reader). io_uring woke them
// newest first: "2", "3", "1".
CORIO_TEST(SockOrder, ReceiversWaitingOnOneSocketAreServedInTheOrderTheyCame) {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
        Coro<std::vector<std::string>> running = three_waiting_receivers(type);
        std::vector<std::string> got = co_await std::move(running);
        EXPECT_EQ(got, (std::vector<std::string>{"1", "2", "3"})) << "type " << type;
    }
}

// Two datagrams waiting to be sent to a full receiver leave in the order they were sent.
CORIO_TEST(SockOrder, DatagramsWaitingForAFullReceiverLeaveInOrder) {
    auto [a, b] = unix_socket_pair(SOCK_DGRAM);
    std::string filler(1000, 'f');
    int queued = 0;
    while (::send(a.fileno(), filler.data(), filler.size(), MSG_DONTWAIT) > 0) ++queued;
    CO_ASSERT_GT(queued, 0);
    DatagramEndpoint sender(std::move(a));
    Task<> first = create_task(sender.send("first"));
    co_await sleep(0s);
    Task<> second = create_task(sender.send("second"));
    for (int i = 0; i < 3; ++i) co_await sleep(0s);
    EXPECT_FALSE(first.done());
    EXPECT_FALSE(second.done());
    std::vector<std::string> tail;
    for (int i = 0; i < queued + 2; ++i) {
        std::string got = co_await sock_recv(b, 2000);
        if (got != filler) tail.push_back(got);
    }
    co_await first;
    co_await second;
    EXPECT_EQ(tail, (std::vector<std::string>{"first", "second"}));
}

// A receiver cancelled while it waits behind another leaves its place to the next one, and
// nothing it would have taken is lost.
CORIO_TEST(SockOrder, AReceiverCancelledInTheQueueLeavesTheOthersInOrder) {
    auto [a, b] = unix_socket_pair();
    Task<std::string> first = create_task(sock_recv(b, 1));
    co_await sleep(0s);
    Task<std::string> second = create_task(sock_recv(b, 1));
    co_await sleep(0s);
    Task<std::string> third = create_task(sock_recv(b, 1));
    co_await sleep(0s);
    second.cancel();
    for (int i = 0; i < 5 && !second.done(); ++i) co_await sleep(0s);
    EXPECT_TRUE(second.cancelled());
    CO_ASSERT_EQ(::send(a.fileno(), "12", 2, 0), 2);
    std::string got_first = co_await first;
    std::string got_third = co_await third;
    EXPECT_EQ(got_first, "1");
    EXPECT_EQ(got_third, "2");
}

// --------------------------------------------------------------------------------------------
// A socket that moves between loops

namespace {
Coro<> close_on_this_loop(Socket* s, bool as_streams) {
    if (as_streams) {
        StreamPair streams = make_streams(std::move(*s));
        streams.second.close();
        Coro<> closing = streams.second.wait_closed();
        co_await std::move(closing);
    } else {
        Coro<> sending = sock_sendall(*s, "x");  // used here too: this loop notes it
        co_await std::move(sending);
        s->close();
    }
}
}  // namespace

// A socket used on loop A, then used (or made into streams) and closed on loop B: A forgets the
// fd as B takes it, so a new socket given the same number on A is a new file to A's backend
// (epoll kept A's stale registration, and the new socket's receive waited for ever).
TEST(SocketLoops, ASocketMovedToAnotherLoopIsForgottenByTheFirst) {
    for (bool as_streams : {false, true}) {
        Runner a;
        Runner b;
        SocketHolder h;
        a.run(open_and_wait_once(&h));
        int fd = h.s.fileno();
        b.run(close_on_this_loop(&h.s, as_streams));
        h.peer.close();
        std::string got = a.run(recv_on_a_new_pair(fd));
        EXPECT_EQ(got, "hello") << (as_streams ? "make_streams" : "sock_sendall");
    }
}

namespace {
// Loop A's thread: uses a socket, lets the main thread take it, then, while A was busy, makes a
// new socket and receives on it.
struct Handover {
    std::latch used{1};
    std::latch taken{1};
    Socket s;
    Socket peer;
};

Coro<std::string> use_then_receive_on_a_new_socket(Handover* h) {
    Coro<> waiting = recv_then_give_up(&h->s);
    co_await std::move(waiting);
    h->used.count_down();
    h->taken.wait();  // blocks loop A while the main thread releases (or moves) and closes the socket
    Coro<std::string> receiving = recv_on_a_new_pair(-1);
    co_return co_await std::move(receiving);
}
}  // namespace

// Socket::release() (or a move to this thread's loop) while the socket's loop runs on another
// thread: that loop forgets the fd later, on its own thread, so it is given the original to
// forget and close and the caller gets a duplicate. It was told the number only, and forgot
// whichever new socket had taken it by then (its receive failed with ECANCELED).
TEST(SocketLoops, ReleaseFromAnotherThreadLeavesThatLoopsNewSocketsAlone) {
    for (bool release : {true, false}) {
        Handover h;
        auto [s, peer] = unix_socket_pair();
        h.s = std::move(s);
        h.peer = std::move(peer);
        std::string got;
        std::thread loop_a([&] { got = corio::run(use_then_receive_on_a_new_socket(&h)); });
        h.used.wait();
        if (release) {
            int fd = h.s.release();
            EXPECT_GE(fd, 0);
            ::close(fd);  // the new owner closes it at once
        } else {
            Runner b;
            b.run(close_on_this_loop(&h.s, false));
        }
        h.peer.close();
        h.taken.count_down();
        loop_a.join();
        EXPECT_EQ(got, "hello") << (release ? "release()" : "used and closed on another loop");
    }
}

// As sock_* do: streams over a closed (or moved-from) socket are refused, instead of swallowing
// writes and never finishing their close.
CORIO_TEST(SocketStreams, MakeStreamsOfAClosedSocketThrowsEbadf) {
    auto [a, b] = unix_socket_pair();
    a.close();
    EXPECT_THROW(make_streams(std::move(a)), std::system_error);
    Socket moved = std::move(b);
    try {
        (void)make_streams(std::move(b));
        ADD_FAILURE() << "make_streams of a moved-from socket did not throw";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EBADF);
    }
    co_return;
}

namespace {
struct CrossLoop {
    std::latch used{1};
    std::latch release_a{1};
    std::latch a_stopped{1};
    std::latch done{1};
    Socket s;
};

// On loop A: uses the socket, hands it over, and keeps the loop running until released.
Coro<> use_then_hand_over(CrossLoop* h) {
    Coro<> sending = sock_sendall(h->s, "from A");
    co_await std::move(sending);
    h->used.count_down();
    h->release_a.wait();
}

// On loop B: uses the socket (A forgets it), lets A stop if it still runs, closes the socket and
// reads what the peer gets, up to the end.
Coro<std::string> use_close_and_read(CrossLoop* h, Socket* peer, bool a_running) {
    Coro<> sending = sock_sendall(h->s, "from B");
    co_await std::move(sending);
    if (a_running) h->release_a.count_down();
    h->s.close();
    std::string all;
    for (;;) {
        Coro<std::string> bounded = wait_for(sock_recv(*peer, 100), 5s);
        std::string part;
        try {
            part = co_await std::move(bounded);
        } catch (const TimeoutError&) {
            co_return all + "<no end after 5 s>";
        }
        if (part.empty()) co_return all + "<end>";
        all += part;
    }
}
}  // namespace

// A socket taken from loop A (running on another thread, or idle there) and closed on loop B
// ends the connection: a running A gets the original to forget and close, which it does at its
// next tick or as it stops (it kept it until it next ran), and the socket goes on with a
// duplicate; an idle A is told the number only, and the socket keeps its fd.
TEST(SocketLoops, ASocketTakenFromAnotherThreadsLoopEndsItsConnectionWhenClosed) {
    for (bool a_running : {true, false}) {
        CrossLoop h;
        auto [s, peer] = unix_socket_pair();
        h.s = std::move(s);
        std::thread loop_a([&h] {
            Runner a;
            a.run(use_then_hand_over(&h));
            h.a_stopped.count_down();
            h.done.wait();
        });
        h.used.wait();
        if (!a_running) {
            h.release_a.count_down();
            h.a_stopped.wait();  // A idles, open, on its thread
        }
        Runner b;
        std::string got = b.run(use_close_and_read(&h, &peer, a_running));
        h.done.count_down();
        loop_a.join();
        EXPECT_EQ(got, "from Afrom B<end>") << (a_running ? "A running" : "A idle");
    }
}

// EventLoop::hand_off_fd from another thread just as the loop starts a run: the loop must wake
// for it (it could have read its inbox flag down before the hand-off raised it, then slept with
// the flag stuck up: the fd stayed open, and every later call_soon_threadsafe skipped its
// wake-up too). Each round: the loop starts, the fd is handed off, its peer must see the end.
TEST(SocketLoops, AnFdHandedOffAsTheLoopStartsIsClosedPromptly) {
    EventLoop loop;
    std::atomic<int> go{0};
    std::atomic<bool> done{false};
    std::atomic<bool> quit{false};
    std::thread runner([&] {
        int seen = 0;
        for (;;) {
            int g;
            while ((g = go.load()) == seen && !quit.load()) std::this_thread::yield();
            if (quit.load()) break;
            seen = g;
            loop.run_until([&] { return done.load(); });
        }
    });
    int stranded = 0;
    for (int round = 1; round <= 300 && stranded == 0; ++round) {
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        done = false;
        go.store(round);
        // A varying head start, so that the hand-off meets the loop at every point of its start.
        for (int k = 0; k < (round % 64) * 4; ++k) std::atomic_signal_fence(std::memory_order_seq_cst);
        if (!loop.hand_off_fd(sv[0], EventLoop::FdHandOffMode::Close)) ::close(sv[0]);
        pollfd p{sv[1], POLLIN, 0};
        if (::poll(&p, 1, 5000) == 0) ++stranded;  // the end never came
        loop.call_soon_threadsafe([&] { done = true; });
        if (stranded) loop.backend().wakeup();  // so that a failure ends instead of hanging
        while (loop.is_running() || !done.load()) std::this_thread::yield();
        ::close(sv[1]);
    }
    quit = true;
    runner.join();
    EXPECT_EQ(stranded, 0);
}
