// Network faults over loopback: each gives a clear std::system_error (or the asyncio-named
// error), never kills the process, and leaks no fd and no backend operation.
#include <corio/server.hpp>
#include <corio/streams.hpp>
#include <corio/testing.hpp>

#include "net_support.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::os_error_of;
using corio_test::open_fd_set;
using corio_test::open_fds;
using corio_test::settle;

#if defined(__SANITIZE_ADDRESS__)
#define CORIO_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_TEST_UNDER_ASAN 1
#endif
#endif
#ifdef CORIO_TEST_UNDER_ASAN
#include <sanitizer/lsan_interface.h>
#endif

namespace {

[[maybe_unused]] void skip_test(const std::string& why) { GTEST_SKIP() << why; }

// Restores the loop's exception handler on scope exit.
struct HandlerGuard {
    EventLoop& loop;
    EventLoop::ExceptionHandler saved = loop.get_exception_handler();
    ~HandlerGuard() { loop.set_exception_handler(saved); }
};

bool is_reset_or_pipe(int code) { return code == ECONNRESET || code == EPIPE; }

// Both ends of a loopback connection: streams on our side, the raw accepted socket on the
// peer's, so that the test can misbehave as a peer (reset, close, read slowly).
struct RawLink {
    StreamPair ours;
    Socket peer;
};

Coro<RawLink> raw_link(int peer_rcvbuf = 0) {
    Socket listener = Socket::create(AF_INET, SOCK_STREAM);
    if (peer_rcvbuf) listener.set_option(SOL_SOCKET, SO_RCVBUF, peer_rcvbuf);
    listener.bind(SocketAddress("127.0.0.1", 0));
    listener.listen();
    Coro<StreamPair> connecting = open_connection("127.0.0.1", listener.getsockname().port());
    StreamPair ours = co_await std::move(connecting);
    std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
    RawLink link{std::move(ours), std::move(accepted.first)};
    co_return link;
}

// Closes with an RST instead of a FIN (SO_LINGER with a zero timeout).
void reset(Socket& s) {
    ::linger hard{1, 0};
    ::setsockopt(s.fileno(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    s.close();
}

// Runs the scenario `make()` in its own coroutine (so that everything it opened is gone when
// it returns) and checks that no fd and no backend operation is left behind.
template <class F>
Coro<> without_leaks(F make) {
    int fds_before = open_fds();
    std::size_t ops_before = get_running_loop().backend().pending();
    {
        Coro<> scenario = make();
        co_await std::move(scenario);
    }
    co_await settle();
    EXPECT_EQ(open_fds(), fds_before) << "fds leaked";
    EXPECT_EQ(get_running_loop().backend().pending(), ops_before) << "backend operations left behind";
}

}  // namespace

CORIO_TEST(NetFaults, PeerResetIsConnectionResetOrEof) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        reset(link.peer);
        std::optional<std::string> data;
        std::optional<std::system_error> error;
        try {
            Coro<std::string> reading = link.ours.first.read(100);
            data = co_await std::move(reading);
        } catch (const std::system_error& e) {
            error = e;
        }
        // Linux reports the RST as ECONNRESET; a kernel that reports EOF instead is fine too.
        if (error) {
            EXPECT_EQ(error->code().value(), ECONNRESET) << error->what();
            // As asyncio's reader keeps its exception(): every later read throws it again
            // (never a clean EOF, which would pass a truncated stream off as complete).
            EXPECT_FALSE(link.ours.first.at_eof());
            EXPECT_TRUE(link.ours.first.exception() != nullptr);
            CO_CATCH(std::system_error, again, link.ours.first.read(-1));
            EXPECT_TRUE(again.has_value());
            if (again) {
                EXPECT_EQ(again->code().value(), ECONNRESET);
            }
        } else {
            EXPECT_EQ(data, "");
            EXPECT_TRUE(link.ours.first.at_eof());
            std::string after = co_await link.ours.first.read(-1);
            EXPECT_EQ(after, "");
        }
        link.ours.second.close();
        co_await link.ours.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

// asyncio's _force_close: a connection lost to an error closes the transport. wait_closed()
// returned only after the application's own close(), so a task watching it waited for ever and
// the fd stayed open.
CORIO_TEST(NetFaults, AConnectionLostToAResetIsClosed) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        reset(link.peer);
        CO_CATCH(std::system_error, error, link.ours.first.read(100));
        if (!error) co_return;  // a kernel that reports the RST as EOF: nothing was lost
        EXPECT_TRUE(link.ours.second.is_closing());
        // Writes after the loss are dropped, as asyncio's are; drain() reports the error (they
        // threw logic_error "write() after close()", as if the application had closed it).
        link.ours.second.write("first");
        link.ours.second.write("second");
        CO_CATCH(std::system_error, drained, link.ours.second.drain());
        EXPECT_TRUE(drained.has_value());
        auto closed = wait_for(link.ours.second.wait_closed(), 10s);
        co_await std::move(closed);  // without close(): the connection is gone
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

// Once a write has met the reset (taking the kernel's pending error), the reader still sees the
// reset, not an end of stream after the bytes that came before it: a truncated message must
// not pass for a complete one (asyncio: every later read raises ConnectionResetError).
CORIO_TEST(NetFaults, AResetMetByAWriteIsNotAnEndOfStreamForTheReader) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        auto sending = sock_sendall(link.peer, "first half of a messa");
        co_await std::move(sending);
        reset(link.peer);
        link.ours.second.write("request");
        CO_CATCH(std::system_error, drained, link.ours.second.drain());
        if (!drained) co_return;  // the write went out before the reset was seen: nothing to check
        EXPECT_TRUE(is_reset_or_pipe(drained->code().value())) << drained->what();
        CO_CATCH(std::system_error, read_error, link.ours.first.read(-1));
        EXPECT_TRUE(read_error.has_value()) << "the reset read as a clean end of stream";
        EXPECT_FALSE(link.ours.first.at_eof());
        auto closed = wait_for(link.ours.second.wait_closed(), 10s);
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, PeerResetWhileAReadIsPending) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        Coro<std::string> reading = link.ours.first.readline();
        Task<std::string> blocked = create_task(std::move(reading));
        co_await sleep(0ms);
        co_await sleep(0ms);
        EXPECT_FALSE(blocked.done());
        reset(link.peer);
        std::optional<std::string> line;
        std::optional<std::system_error> error;
        try {
            Coro<std::string> bounded = wait_for(blocked, 10s);
            line = co_await std::move(bounded);
        } catch (const std::system_error& e) {
            error = e;
        }
        if (error) {
            EXPECT_EQ(error->code().value(), ECONNRESET);
        } else {
            EXPECT_EQ(line, "");
        }
        link.ours.second.close();
        co_await link.ours.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, PeerClosingMidReadexactlyIsIncompleteRead) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        Coro<std::string> exact = link.ours.first.readexactly(10);
        Task<std::string> reading = create_task(std::move(exact));
        Coro<> sending = sock_sendall(link.peer, std::string("12345"));
        co_await std::move(sending);
        co_await sleep(0ms);
        co_await sleep(0ms);
        EXPECT_FALSE(reading.done());
        link.peer.close();  // an orderly FIN, mid-message
        CO_CATCH(IncompleteReadError, incomplete, reading);
        CO_ASSERT_TRUE(incomplete.has_value());
        EXPECT_EQ(incomplete->partial, "12345");
        EXPECT_EQ(incomplete->expected, 10u);
        link.ours.second.close();
        co_await link.ours.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, PeerResetAfterABurstGivesAPrefixOfItThenTheError) {
    // Reads may take more than the caller's buffer (the rest waits in the reader's buffer):
    // whatever arrived before the reset comes back in order and nothing else, then the error
    // (or the end), and the stream reads as ended afterwards.
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        std::string payload(512 * 1024, '\0');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = char((i * 131 + i / 4099) % 251);
        std::size_t sent = 0;
        while (sent < payload.size()) {  // what the kernel takes without waiting
            ssize_t n = ::send(link.peer.fileno(), payload.data() + sent, payload.size() - sent, MSG_DONTWAIT);
            if (n <= 0) break;
            sent += std::size_t(n);
        }
        EXPECT_GT(sent, 0u);
        reset(link.peer);
        auto& reader = link.ours.first;
        std::string got;
        std::optional<std::system_error> error;
        std::vector<char> buf(1000);
        try {
            for (;;) {
                Coro<std::size_t> reading = reader.read_into(buf);
                std::size_t n = co_await std::move(reading);
                if (n == 0) break;
                got.append(buf.data(), n);
            }
        } catch (const std::system_error& e) {
            error = e;
        }
        EXPECT_LE(got.size(), sent);
        EXPECT_TRUE(got == payload.substr(0, got.size())) << "bytes out of order or invented";
        if (error) {
            EXPECT_EQ(error->code().value(), ECONNRESET) << error->what();
            EXPECT_FALSE(reader.at_eof());
            CO_CATCH(std::system_error, again, reader.read(-1));
            EXPECT_TRUE(again.has_value());
            if (again) {
                EXPECT_EQ(again->code().value(), ECONNRESET);
            }
        } else {
            EXPECT_TRUE(reader.at_eof());
            std::string after = co_await reader.read(-1);
            EXPECT_EQ(after, "");
        }
        link.ours.second.close();
        co_await link.ours.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, WritingToAClosedPeerFailsDrainWithoutSigpipe) {
    // Take away the library's process-wide SIG_IGN for this test: if any socket write lacked
    // MSG_NOSIGNAL, SIGPIPE would now kill the test process.
    struct sigaction dfl {}, previous {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGPIPE, &dfl, &previous);
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        link.peer.close();
        auto& writer = link.ours.second;
        std::optional<std::system_error> error;
        std::string chunk(64 * 1024, 'w');
        // The first write may still be accepted by the kernel; the peer answers it with an
        // RST, and from then on writes fail.
        for (int i = 0; i < 100 && !error; ++i) {
            try {
                writer.write(chunk);
                Coro<> draining = writer.drain();
                co_await std::move(draining);
            } catch (const std::system_error& e) {
                error = e;
            }
        }
        CO_ASSERT_TRUE(error.has_value());
        EXPECT_TRUE(is_reset_or_pipe(error->code().value())) << error->what();
        // The error sticks: drain() keeps reporting it.
        CO_CATCH(std::system_error, again, writer.drain());
        EXPECT_TRUE(again.has_value());
        writer.close();
        Coro<> closed = wait_for(writer.wait_closed(), 10s);
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    std::exception_ptr failure;
    try {
        co_await std::move(checked);
    } catch (...) {
        failure = std::current_exception();
    }
    ::sigaction(SIGPIPE, &previous, nullptr);
    if (failure) std::rethrow_exception(failure);
}

CORIO_TEST(NetFaults, WritingToAResetPeerFailsDrain) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        reset(link.peer);
        auto& writer = link.ours.second;
        std::optional<std::system_error> error;
        for (int i = 0; i < 100 && !error; ++i) {
            try {
                writer.write("after the reset\n");
                Coro<> draining = writer.drain();
                co_await std::move(draining);
            } catch (const std::system_error& e) {
                error = e;
            }
            co_await sleep(0ms);
        }
        CO_ASSERT_TRUE(error.has_value());
        EXPECT_TRUE(is_reset_or_pipe(error->code().value())) << error->what();
        writer.close();
        Coro<> closed = wait_for(writer.wait_closed(), 10s);
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

namespace {
Coro<std::string> read_100(StreamReader r) {
    std::string got = co_await r.read(100);
    co_return got;
}
Coro<> drain_of(StreamWriter w) {
    Coro<> draining = w.drain();
    co_await std::move(draining);
}
}  // namespace

// A reset while a read and a drain wait: the kernel gives ECONNRESET to the first call and EPIPE
// to the writes after it. Whichever completion the transport sees first, the reader, drain()
// and exception() all report the reset, as asyncio's do (its reader meets it), not the broken
// pipe the write was left with.
CORIO_TEST(NetFaults, AResetWhileReadingAndDrainingIsConnectionResetForBoth) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        auto& [reader, writer] = link.ours;
        writer.set_write_buffer_limits(1000);
        writer.write(std::string(8 << 20, 'x'));  // the peer never reads: the write waits
        Task<std::string> reading = create_task(read_100(reader));
        Task<> draining = create_task(drain_of(writer));
        co_await settle();
        reset(link.peer);
        std::exception_ptr drain_error, read_error;
        try {
            co_await draining;
        } catch (...) {
            drain_error = std::current_exception();
        }
        try {
            co_await reading;
        } catch (...) {
            read_error = std::current_exception();
        }
        EXPECT_EQ(os_error_of(drain_error), ECONNRESET);
        EXPECT_EQ(os_error_of(read_error), ECONNRESET);
        EXPECT_EQ(os_error_of(reader.exception()), ECONNRESET);
        writer.close();
        Coro<> closed = wait_for(writer.wait_closed(), 10s);
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, ConnectionRefusedLeaksNothing) {
    auto scenario = []() -> Coro<> {
        std::uint16_t port;
        {
            Socket s = Socket::create(AF_INET, SOCK_STREAM);
            s.bind(SocketAddress("127.0.0.1", 0));
            port = s.getsockname().port();
        }
        for (int i = 0; i < 20; ++i) {
            CO_CATCH(std::system_error, refused, open_connection("127.0.0.1", port));
            CO_ASSERT_TRUE(refused.has_value());
            EXPECT_EQ(refused->code().value(), ECONNREFUSED);
        }
        // Unix sockets: a missing path, and a path with nobody listening.
        std::string missing = "/tmp/corio-faults-missing-" + std::to_string(::getpid()) + ".sock";
        CO_CATCH(std::system_error, no_file, open_unix_connection(missing));
        CO_ASSERT_TRUE(no_file.has_value());
        EXPECT_EQ(no_file->code().value(), ENOENT);
        std::string stale = "/tmp/corio-faults-stale-" + std::to_string(::getpid()) + ".sock";
        {
            Socket s = Socket::create(AF_UNIX, SOCK_STREAM);
            s.bind(SocketAddress::unix_path(stale));
        }
        CO_CATCH(std::system_error, nobody, open_unix_connection(stale));
        ::unlink(stale.c_str());
        CO_ASSERT_TRUE(nobody.has_value());
        EXPECT_EQ(nobody->code().value(), ECONNREFUSED);
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, ZeroStreamLimitIsRejectedWithoutLeakingTheSocket) {
    auto scenario = []() -> Coro<> {
        Socket listener = Socket::create(AF_INET, SOCK_STREAM);
        listener.bind(SocketAddress("127.0.0.1", 0));
        listener.listen();
        CO_CATCH(std::invalid_argument, rejected,
                 open_connection("127.0.0.1", listener.getsockname().port(), ConnectOptions{.limit = 0}));
        EXPECT_TRUE(rejected.has_value());
    };
    std::set<int> fds_before = open_fd_set();
    {
        Coro<> run = scenario();
        co_await std::move(run);
    }
    co_await settle();
    std::set<int> fds_after = open_fd_set();
    // Whatever leaked is closed, so that the rest of the suite runs clean; the test fails.
    for (int fd : fds_after)
        if (!fds_before.count(fd)) Socket(fd).close();  // tells the backend first
    EXPECT_EQ(fds_after, fds_before);
}

CORIO_TEST(NetFaults, EightMegabytesToASlowReaderArriveIntact) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link(/*peer_rcvbuf=*/16 * 1024);
        StreamPair peer = make_streams(std::move(link.peer));
        auto& writer = link.ours.second;
        std::string payload(8 * 1024 * 1024, '\0');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = char((i * 131 + i / 4099) % 251);
        writer.write(payload);
        // The kernel took only part of it: the rest waits in the writer's buffer.
        EXPECT_GT(writer.get_write_buffer_size(), 0u);
        EXPECT_LT(writer.get_write_buffer_size(), payload.size());
        Coro<> draining_coro = writer.drain();
        Task<> draining = create_task(std::move(draining_coro));
        // The slow reader: small reads, a loop tick between them.
        std::string got;
        got.reserve(payload.size());
        std::size_t reads = 0;
        while (got.size() < payload.size()) {
            Coro<std::string> reading = peer.first.read(4096);
            std::string piece = co_await std::move(reading);
            CO_ASSERT_FALSE(piece.empty());
            got += piece;
            ++reads;
            co_await sleep(0ms);
        }
        co_await draining;
        EXPECT_GE(reads, payload.size() / 4096);
        EXPECT_TRUE(got == payload);
        writer.close();
        co_await writer.wait_closed();
        std::string eof = co_await peer.first.read(-1);
        EXPECT_EQ(eof, "");
        peer.second.close();
        co_await peer.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

namespace {
extern "C" void ignore_signal(int) {}
}  // namespace

CORIO_TEST(NetFaults, SignalsInterruptingTheLoopLoseNoData) {
    // EINTR: a handler installed without SA_RESTART makes epoll_wait (and any blocking call)
    // fail with EINTR; signals keep arriving from another thread during an 8 MiB round trip.
    struct sigaction plain {}, saved1 {}, saved2 {};
    plain.sa_handler = &ignore_signal;
    sigemptyset(&plain.sa_mask);
    plain.sa_flags = 0;  // no SA_RESTART
    ::sigaction(SIGUSR2, &plain, &saved2);
    // Also under the loop's SIGUSR1 handler, so that removing that one leaves a harmless
    // handler (not the default action, which would end the process) for stragglers.
    ::sigaction(SIGUSR1, &plain, &saved1);
    EventLoop& loop = get_running_loop();
    int loop_handler_runs = 0;
    loop.add_signal_handler(SIGUSR1, [&] { ++loop_handler_runs; });
    std::atomic<bool> done{false};
    std::atomic<int> sent{0};
    std::thread storm([&] {
        while (!done.load() && sent.load() < 20000) {
            ::kill(::getpid(), sent.load() % 2 ? SIGUSR1 : SIGUSR2);
            ++sent;
            std::this_thread::sleep_for(std::chrono::microseconds(100));  // a load generator, not a sync
        }
    });
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        StreamPair peer = make_streams(std::move(link.peer));
        std::string payload(8 * 1024 * 1024, '\0');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = char((i * 7 + i / 65521) % 256);
        auto echo = [](StreamPair p) -> Coro<> {
            for (;;) {
                std::string data = co_await p.first.read(65536);
                if (data.empty()) break;
                p.second.write(data);
                co_await p.second.drain();
            }
            p.second.close();
            co_await p.second.wait_closed();
        };
        Task<> echoing = create_task(echo(peer));
        auto& [reader, writer] = link.ours;
        auto sending = [&]() -> Coro<> {
            writer.write(payload);
            co_await writer.drain();
            writer.write_eof();
        };
        Task<> sender = create_task(sending());
        std::string back = co_await reader.read(-1);
        co_await sender;
        co_await echoing;
        EXPECT_TRUE(back == payload) << back.size() << " of " << payload.size() << " bytes came back";
        writer.close();
        co_await writer.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    std::exception_ptr failure;
    try {
        co_await std::move(checked);
    } catch (...) {
        failure = std::current_exception();
    }
    done = true;
    storm.join();
    loop.remove_signal_handler(SIGUSR1);
    // A process-directed signal may still wait to be taken by some thread: restore the default
    // actions only once none is pending (bounded).
    for (int i = 0; i < 100000; ++i) {
        sigset_t pending;
        ::sigpending(&pending);
        if (!sigismember(&pending, SIGUSR1) && !sigismember(&pending, SIGUSR2)) break;
        std::this_thread::yield();
    }
    ::sigaction(SIGUSR1, &saved1, nullptr);
    ::sigaction(SIGUSR2, &saved2, nullptr);
    if (failure) std::rethrow_exception(failure);
    EXPECT_GT(sent.load(), 0);
}

namespace {

// Lowers RLIMIT_NOFILE so that exactly `room` more fds can be opened; restores it on scope exit.
class FdLimit {
public:
    explicit FdLimit(int room) {
        ::getrlimit(RLIMIT_NOFILE, &saved_);
        std::set<int> open = open_fd_set();
        // The limit bounds fd *numbers*: new fds take the lowest free numbers below it.
        rlim_t limit = 0;
        int free_below = 0;
        while (free_below < room || open.count(int(limit))) {
            if (!open.count(int(limit))) ++free_below;
            ++limit;
        }
        rlimit lowered = saved_;
        lowered.rlim_cur = limit;
        ok_ = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
    }
    ~FdLimit() { restore(); }
    void restore() {
        if (ok_) ::setrlimit(RLIMIT_NOFILE, &saved_);
        ok_ = false;
    }
    bool ok() const noexcept { return ok_; }

private:
    rlimit saved_{};
    bool ok_ = false;
};

}  // namespace

CORIO_TEST(NetFaults, AcceptLoopOutOfFdsBacksOffAndResumes) {
#ifdef CORIO_TEST_UNDER_ASAN
    // UBSan's vptr check probes memory through a pipe (sanitizer_common's
    // IsAccessibleMemoryRange); with no fd left it reports false "invalid vptr" errors.
    skip_test("not under ASan+UBSan: the sanitizer itself needs free fds");
    co_return;
#endif
    int fds_before = open_fds();
    EventLoop& loop = get_running_loop();
    HandlerGuard restore_handler{loop};
    std::vector<std::chrono::steady_clock::time_point> reports;
    std::vector<std::string> other_reports;
    Event first_report;
    loop.set_exception_handler([&](EventLoop&, const ExceptionContext& c) {
        if (c.message.find("out of system resources") != std::string::npos) {
            reports.push_back(std::chrono::steady_clock::now());
            first_report.set();
        } else {
            other_reports.push_back(corio::testing::format_report(c));
        }
    });

    auto echo_line = [](StreamReader reader, StreamWriter writer) -> Coro<> {
        std::string line = co_await reader.readline();
        writer.write(line);
        co_await writer.drain();
        std::string eof = co_await reader.read(-1);
    };
    Coro<Server> starting = start_server(echo_line, "127.0.0.1", 0, ServerOptions{.backlog = 64});
    Server server = co_await std::move(starting);
    SocketAddress address = server.sockets()[0].getsockname();

    constexpr int kClients = 8;
    constexpr int kRoom = 2;  // the server can hold this many connections at a time
    // Client sockets are made before the limit is lowered: only the server's accepts run out.
    std::vector<Socket> sockets;
    for (int i = 0; i < kClients; ++i) sockets.push_back(Socket::create(AF_INET, SOCK_STREAM));

    int served = 0;
    Event release;
    auto client = [&](Socket s, int i) -> Coro<> {
        co_await sock_connect(s, address);
        StreamPair conn = make_streams(std::move(s));
        std::string line = "client " + std::to_string(i) + "\n";
        conn.second.write(line);
        std::string reply = co_await conn.first.readline();
        if (reply == line) ++served;
        co_await release.wait();
        conn.second.close();
        co_await conn.second.wait_closed();
    };

    std::optional<FdLimit> limit(std::in_place, kRoom);
    CO_ASSERT_TRUE(limit->ok());
    std::vector<Task<>> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(create_task(client(std::move(sockets[std::size_t(i)]), i)));

    // The server runs out of fds and says so.
    Coro<bool> reported = wait_for(first_report.wait(), 10s);
    co_await std::move(reported);
    // A bounded real-time window: the accept loop waits 100 ms between retries, so about ten
    // reports; a busy loop would produce thousands.
    std::size_t at_start = reports.size();
    co_await sleep(1s);
    std::size_t in_window = reports.size() - at_start;
    EXPECT_GE(in_window, 3u);
    EXPECT_LT(in_window, 50u);
    for (std::size_t i = 1; i < reports.size(); ++i)
        EXPECT_GE(reports[i] - reports[i - 1], 80ms) << "accept retries are not spaced out";
    EXPECT_EQ(served, kRoom) << "the server held more connections than it had fds for";

    // Clients finish and free the server's fds: accepting resumes, still under the low limit,
    // until every client has been served.
    release.set();
    auto joined = [&]() -> Coro<> {
        for (auto& t : clients) co_await t;
    };
    Coro<> joining = joined();
    Coro<> bounded = wait_for(std::move(joining), 20s);
    std::exception_ptr failure;
    try {
        co_await std::move(bounded);
    } catch (...) {
        failure = std::current_exception();
    }
    limit.reset();
    for (auto& t : clients) {
        if (!t.done()) t.cancel();
    }
    for (auto& t : clients) {
        try {
            co_await t;
        } catch (...) {
        }
    }
    EXPECT_FALSE(failure) << "not every client was served once fds were free";
    EXPECT_EQ(served, kClients);
    server.close();
    server.close_clients();
    co_await server.wait_closed();
    EXPECT_TRUE(other_reports.empty()) << (other_reports.empty() ? "" : other_reports[0]);
    co_await settle();
    EXPECT_EQ(open_fds(), fds_before);
}

namespace {
// A connection whose writer was closed with megabytes still buffered for a peer that never
// reads (a hung client). Returns the peer's fd, left open on purpose.
Coro<int> stuck_flushing() {
    Socket listener = Socket::create(AF_INET, SOCK_STREAM);
    listener.bind(SocketAddress("127.0.0.1", 0));
    listener.listen();
    Coro<StreamPair> connecting = open_connection("127.0.0.1", listener.getsockname().port());
    StreamPair conn = co_await std::move(connecting);
    std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
    conn.second.write(std::string(16 * 1024 * 1024, 'x'));
    conn.second.close();  // flushes first: it cannot, the peer does not read
    co_await sleep(0ms);
    co_return accepted.first.release();
}
}  // namespace

TEST(NetFaultsLoopClose, ConnectionStuckFlushingIsReleasedWhenTheLoopCloses) {
    std::set<int> before = open_fd_set();
    int peer = -1;
    {
#ifdef CORIO_TEST_UNDER_ASAN
        // While the bug below stands, the stuck transport is also leaked memory; keep LSan's
        // exit-time report for other leaks. The fd check below still sees this one.
        __lsan::ScopedDisabler stuck_transport_leaks;
#endif
        Runner runner(RunOptions{.handle_sigint = false});
        peer = runner.run(stuck_flushing());
        runner.close();
    }
    std::set<int> after = open_fd_set();
    after.erase(peer);
    ::close(peer);
    // Whatever leaked is closed, so that the rest of the suite runs clean; the test fails.
    for (int fd : after)
        if (!before.count(fd)) ::close(fd);
    EXPECT_EQ(after, before);
}

CORIO_TEST(NetFaults, AReadErrorIsRaisedAgainByEveryLaterRead) {
    // asyncio's reader keeps the connection's exception(): a later read never passes the
    // reset off as a clean end (which would let a truncated message look complete).
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        reset(link.peer);
        auto& reader = link.ours.first;
        CO_CATCH(std::system_error, first, reader.read(100));
        if (!first) {
            // A kernel that reports the RST as EOF has no error to keep.
            link.ours.second.close();
            co_return;
        }
        EXPECT_EQ(first->code().value(), ECONNRESET);
        EXPECT_FALSE(reader.at_eof());
        std::exception_ptr kept = reader.exception();
        EXPECT_TRUE(kept != nullptr);
        CO_CATCH(std::system_error, by_read, reader.read(100));
        CO_CATCH(std::system_error, by_readline, reader.readline());
        CO_CATCH(std::system_error, by_readexactly, reader.readexactly(1));
        CO_CATCH(std::system_error, by_readuntil, reader.readuntil("\r\n"));
        std::vector<char> buf(16);
        CO_CATCH(std::system_error, by_read_into, reader.read_into(buf));
        for (const auto* e : {&by_read, &by_readline, &by_readexactly, &by_readuntil, &by_read_into}) {
            EXPECT_TRUE(e->has_value());
            if (e->has_value()) {
                EXPECT_EQ((*e)->code().value(), ECONNRESET);
            }
        }
        link.ours.second.close();
        Coro<> closed = link.ours.second.wait_closed();
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

// asyncio's transport reads whenever bytes come, so a reset while nobody reads closes it, and a
// task in wait_closed() returns. corio's wait_closed() waited until something touched the
// socket: for ever, on an idle connection.
CORIO_TEST(NetFaults, AResetWhileNobodyReadsClosesTheConnection) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        Task<> waiting = create_task(link.ours.second.wait_closed());
        co_await settle();
        EXPECT_FALSE(waiting.done()) << "an open connection is not closed";
        auto sending = sock_sendall(link.peer, "before the reset");
        co_await std::move(sending);
        co_await settle();
        EXPECT_FALSE(waiting.done()) << "bytes are no loss";
        reset(link.peer);
        auto closed = wait_for(std::move(waiting), 10s);
        co_await std::move(closed);
        EXPECT_TRUE(link.ours.second.is_closing());
        CO_CATCH(std::system_error, error, link.ours.first.read(100));
        CO_ASSERT_TRUE(error.has_value());  // the reset is kept for the reader
        EXPECT_EQ(error->code().value(), ECONNRESET) << error->what();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

// The watch stops reading at twice the limit, as asyncio pauses reading; a reader that takes the
// buffered bytes without waiting lets it go on (asyncio resumes reading), so a reset after that
// still closes the connection.
CORIO_TEST(NetFaults, AResetAfterTheReaderEmptiedAFullBufferClosesTheConnection) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        Task<> waiting = create_task(link.ours.second.wait_closed());
        std::string big(200 * 1024, 'x');
        auto sending = sock_sendall(link.peer, big);
        co_await std::move(sending);
        co_await settle();  // the watch reads up to twice the limit (128 KiB), then stops
        std::string got = co_await link.ours.first.read(1024 * 1024);
        EXPECT_GE(got.size(), 2 * default_stream_limit);  // taken from the buffer, without waiting
        co_await settle();
        reset(link.peer);
        auto closed = wait_for(std::move(waiting), 10s);
        co_await std::move(closed);
        EXPECT_TRUE(link.ours.second.is_closing());
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}
