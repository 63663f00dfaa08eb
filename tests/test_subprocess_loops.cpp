// A Process used on more than one loop: its copies share the child, and any loop may wait for it.
#include <corio/corio.hpp>
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "net_support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

Coro<Process> spawn_true() {
    Coro<Process> spawning = create_subprocess_exec({"true"});
    Process p = co_await std::move(spawning);
    co_return p;
}

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

// Waited for on a Runner's loop, not the spawner's: the wait registered the pidfd with that loop,
// and nothing told the loop when the Process closed it, so on epoll the next file with the same
// number was never added to the epoll set and its receive waited for ever.
TEST(SubprocessLoops, AProcessWaitedForOnAnotherLoopLeavesNoRegistrationThere) {
    std::set<int> before = corio_test::open_fd_set();
    Process p = run(spawn_true());
    std::set<int> with_child = corio_test::open_fd_set();
    std::vector<int> pidfds;
    for (int fd : with_child)
        if (!before.count(fd)) pidfds.push_back(fd);
    ASSERT_EQ(pidfds.size(), 1u) << "the Process should hold its pidfd alone";
    Runner runner;
    EXPECT_EQ(runner.run(wait_on(p)), 0);
    p = Process{};
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_EQ(sv[0], pidfds[0]) << "the test needs the pidfd's number to come back";
    EXPECT_EQ(runner.run(receive_what_is_sent(sv[0], sv[1])), "hello");
}

}  // namespace
