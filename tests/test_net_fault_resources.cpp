// Network faults over loopback, on the resources side: a refused connection and a rejected
// stream limit leak no socket, an accept loop out of fds backs off and resumes once fds are
// free, and a connection stuck flushing to a peer that never reads is released when its loop
// closes. Each gives a clear std::system_error (or the asyncio-named error), never kills the
// process, and leaks no fd and no backend operation. Resets and closed peers are in
// test_net_faults.cpp.
#include <corio/server.hpp>
#include <corio/streams.hpp>
#include <corio/testing.hpp>

#include "net_support.hpp"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::open_fd_set;
using corio_test::open_fds;
using corio_test::settle;
using corio_test::skip_test;
using corio_test::without_leaks;

#ifdef CORIO_TEST_UNDER_ASAN  // net_support.hpp
#include <sanitizer/lsan_interface.h>
#endif

namespace {

// Restores the loop's exception handler on scope exit.
struct HandlerGuard {
    EventLoop& loop;
    EventLoop::ExceptionHandler saved = loop.get_exception_handler();
    ~HandlerGuard() { loop.set_exception_handler(saved); }
};

}  // namespace

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
        // Refused before connecting, as asyncio's StreamReader(limit=0) is: nobody knocked.
        EXPECT_EQ(::accept4(listener.fileno(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC), -1);
        EXPECT_EQ(errno, EAGAIN);
        CO_CATCH(std::invalid_argument, rejected_unix,
                 open_unix_connection("/nonexistent/corio.sock", ConnectOptions{.limit = 0}));
        EXPECT_TRUE(rejected_unix.has_value());
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
    EXPECT_LT(in_window, 50u);
    // And it goes on retrying (waited for: a loaded machine may fit fewer in the window).
    for (int i = 0; i < 100 && reports.size() - at_start < 3; ++i) co_await sleep(100ms);
    EXPECT_GE(reports.size() - at_start, 3u);
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
    server.cancel_clients();
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
