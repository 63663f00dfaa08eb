// A Process used on more than one loop: its copies share the child, and any loop may wait for it.
#include <corio/corio.hpp>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "net_support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

Coro<Process> spawn(std::string command) {
    Coro<Process> spawning = create_subprocess_shell(command);
    Process p = co_await std::move(spawning);
    co_return p;
}

Coro<> nothing() { co_return; }

Coro<int> wait_on(Process p) {
    Coro<int> waiting = p.wait();
    int code = co_await std::move(waiting);
    co_return code;
}

Coro<std::string> receive_what_is_sent(int fd_a, int fd_b) {
    Socket a(fd_a), b(fd_b);
    Task<std::string> receiving = create_task(sock_recv(a, 16));
    co_await sleep(0s);  // the receive waits in the backend
    Coro<> sending = sock_sendall(b, "hello");
    co_await std::move(sending);
    Coro<std::string> got = wait_for(std::move(receiving), 10s);
    std::string s = co_await std::move(got);
    co_return s;
}

// Waited for on another loop than the spawner's (both alive, so that neither can take the
// other's address): the wait registered the pidfd with that loop, and nothing told the loop
// when the Process closed it, so on epoll the next file with the same number was never added to
// the epoll set and its receive waited for ever.
TEST(SubprocessLoops, AProcessWaitedForOnAnotherLoopLeavesNoRegistrationThere) {
    Runner spawner, waiter;
    ASSERT_NE(&spawner.get_loop(), &waiter.get_loop());
    spawner.run(nothing());  // the loops' own fds exist before the count
    waiter.run(nothing());
    std::set<int> before = corio_test::open_fd_set();
    Process p = spawner.run(spawn("exec true"));
    std::vector<int> pidfds;
    for (int fd : corio_test::open_fd_set())
        if (!before.count(fd)) pidfds.push_back(fd);
    ASSERT_EQ(pidfds.size(), 1u) << "the Process should hold its pidfd alone";
    EXPECT_EQ(waiter.run(wait_on(p)), 0);
    p = Process{};
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(sv[0], pidfds[0]) << "the test needs the pidfd's number to come back";
    EXPECT_EQ(waiter.run(receive_what_is_sent(sv[0], sv[1])), "hello");
}

// Two loops' threads waiting for one child: both used to waitpid() it, and the loser's ECHILD
// read as "reaped elsewhere", 255, sometimes over the real code.
TEST(SubprocessLoops, TwoLoopsWaitingForOneChildBothGetItsCode) {
    Runner spawner;
    for (int round = 0; round < 20; ++round) {
        Process p = spawner.run(spawn("exit 3"));
        std::vector<int> codes = run_loops(2, [p](std::size_t) { return wait_on(p); });
        ASSERT_EQ(codes, (std::vector<int>{3, 3})) << "round " << round;
        EXPECT_EQ(p.returncode(), 3);
    }
}

// With no fd to spare for its copy of the pidfd, a wait on another loop polls instead of failing.
TEST(SubprocessLoops, AWaitOnAnotherLoopWithNoFdToSpareStillGetsTheCode) {
#ifdef CORIO_TEST_UNDER_ASAN  // net_support.hpp: UBSan's checks need a free fd of their own
    GTEST_SKIP() << "fd exhaustion under the sanitizers";
#endif
    Runner spawner, waiter;
    waiter.run(nothing());  // its loop's own fds exist before the table fills
    Process p = spawner.run(spawn("sleep 0.5; exit 4"));  // outlives the set-up below, so the wait polls
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
    std::set<int> open = corio_test::open_fd_set();
    rlimit tight = old;
    tight.rlim_cur = rlim_t(*open.rbegin() + 8);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
    std::vector<int> fillers;
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
    int code = -1;
    EXPECT_NO_THROW(code = waiter.run(wait_on(p)));
    for (int fd : fillers) ::close(fd);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
    EXPECT_EQ(code, 4);
}

}  // namespace
