// Live introspection: the task table and tree, cycles, and corio-ps end to end against a real
// running loop.
#include <corio/testing.hpp>

#include "net_support.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

using namespace corio;
using namespace std::chrono_literals;

namespace {
Coro<> sleepy_leaf() { co_await sleep(1h); }
Coro<> sleepy_worker() { co_await sleepy_leaf(); }
Coro<> await_other(Task<>* other) {
    co_await sleep(0s);
    co_await *other;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

CORIO_TEST(Introspection, TreeShowsStacksAndFlagsCycles) {
    auto w = create_task(sleepy_worker(), "worker-1");
    Task<> a, b;
    a = create_task(await_other(&b), "cyc-a");
    b = create_task(await_other(&a), "cyc-b");
    co_await sleep(0s);
    co_await sleep(0s);
    std::string tree = format_task_tree();
    EXPECT_TRUE(contains(tree, "Task worker-1")) << tree;
    EXPECT_TRUE(contains(tree, "sleepy_worker()")) << tree;
    EXPECT_TRUE(contains(tree, "sleepy_leaf()")) << tree;
    EXPECT_TRUE(contains(tree, "CYCLE: tasks await each other: Task cyc-a")) << tree;
    auto cycles = find_await_cycles(capture_call_graph());
    EXPECT_EQ(cycles.size(), 1u);
    std::string json = format_task_json();
    EXPECT_TRUE(contains(json, "\"name\":\"worker-1\"")) << json;
    w.cancel();
    a.cancel();
    b.cancel();
    for (auto* t : {&w, &a, &b}) {
        try {
            co_await *t;
        } catch (const CancelledError&) {
        }
    }
}

namespace {
Coro<> chain_link(int n, Future<>* end) {
    if (n == 0) {
        co_await *end;
        co_return;
    }
    Task<> next = create_task(chain_link(n - 1, end));
    co_await next;
}
}  // namespace

// A chain of 20,000 tasks each awaiting the next: the table, the tree and the cycle search walk
// it without recursion (corio-ps asks for them on the loop's own thread, and a stack overflow
// there killed the program inspected), and the tree grows with the chain, not its square.
CORIO_TEST(Introspection, ADeepChainOfTasksIsShownWithoutRecursion) {
    constexpr int kLinks = 20000;
    Future<> end(get_running_loop());
    Task<> head = create_task(chain_link(kLinks, &end));
    for (int i = 0; i <= kLinks; ++i) co_await sleep(0s);  // each link starts the next one a tick later
    CO_ASSERT_EQ(all_tasks().size(), std::size_t(kLinks) + 2);
    std::vector<TaskInfo> graph = capture_call_graph();
    EXPECT_TRUE(find_await_cycles(graph).empty());
    std::string tree = format_task_tree();
    EXPECT_LT(tree.size(), std::size_t(kLinks) * 1000) << "the indentation should stop growing";
    EXPECT_TRUE(contains(tree, "[depth 20000] ")) << tree.substr(tree.size() - std::min<std::size_t>(tree.size(), 600));
    EXPECT_GT(format_task_table().size(), std::size_t(kLinks) * 10);
    end.set_result();
    co_await head;
}

CORIO_TEST(Introspection, CorioPsTalksToARunningLoop) {
    enable_introspection();
    auto w = create_task(sleepy_worker(), "busy-worker");
    co_await sleep(0s);
    std::string pid = std::to_string(::getpid());
    std::vector<std::string> argv{CORIO_PS_PATH, "ps", pid};
    auto p = co_await create_subprocess_exec(argv, {.out = PIPE, .err = PIPE});
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(p.returncode(), 0) << err;
    EXPECT_TRUE(contains(out, "busy-worker")) << out;
    EXPECT_TRUE(contains(out, "SleepAwaiter")) << out;
    std::vector<std::string> tree_argv{CORIO_PS_PATH, "pstree", pid};
    auto q = co_await create_subprocess_exec(tree_argv, {.out = PIPE});
    auto [tree, ignored] = co_await q.communicate();
    EXPECT_TRUE(contains(tree, "sleepy_leaf()")) << tree;
    w.cancel();
    try {
        co_await w;
    } catch (const CancelledError&) {
    }
}

using corio_test::unix_request;

// A client that connects and says nothing holds an fd, not the loop: another client is answered
// meanwhile, and the silent one is sent nothing (the loop used to block in recv() for 500 ms on
// it, then answer it "ps").
CORIO_TEST(Introspection, AClientThatSaysNothingDoesNotHoldTheLoop) {
    enable_introspection();
    std::string path = introspection_socket_path(::getpid());
    Socket silent = Socket::create(AF_UNIX, SOCK_STREAM);
    Coro<> connecting = sock_connect(silent, SocketAddress::unix_path(path));
    co_await std::move(connecting);
    co_await sleep(0s);
    Coro<std::string> asking = unix_request(path, "ps\n");
    std::string table = co_await std::move(asking);
    EXPECT_TRUE(contains(table, "NAME")) << table;
    char c;
    EXPECT_EQ(::recv(silent.fileno(), &c, 1, MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN);
}

// Clients that say nothing give their places back after a few seconds: the endpoint serves at
// most 8 at once, and 8 silent ones used to shut every later client out for good.
CORIO_TEST(Introspection, SilentClientsGiveTheirPlacesBack) {
    corio::testing::MockClock clock;
    enable_introspection();
    std::string path = introspection_socket_path(::getpid());
    std::vector<Socket> silent;
    for (int i = 0; i < 8; ++i) {
        silent.push_back(Socket::create(AF_UNIX, SOCK_STREAM));
        Coro<> connecting = sock_connect(silent.back(), SocketAddress::unix_path(path));
        co_await std::move(connecting);
    }
    co_await sleep(10s);  // virtual: their deadlines pass
    Coro<std::string> asking = unix_request(path, "ps\n");
    std::string table = co_await std::move(asking);
    EXPECT_TRUE(contains(table, "NAME")) << table;
}

namespace {
Coro<bool> plain_path_is_served() {
    enable_introspection();
    co_return std::filesystem::exists(introspection_socket_path(::getpid()));
}
}  // namespace

// One loop after another in a process: each is served at corio-PID.sock, the path corio-ps
// asks (the second used to get corio-PID-1.sock, which nothing could reach).
TEST(IntrospectionLoops, EachLoopInTurnIsServedAtThePlainPath) {
    EXPECT_TRUE(corio::run(plain_path_is_served()));
    EXPECT_TRUE(corio::run(plain_path_is_served()));
    EXPECT_FALSE(std::filesystem::exists(introspection_socket_path(::getpid())));
}

TEST(IntrospectionTool, ReportsAnUnreachableProgram) {
    std::string cmd = std::string(CORIO_PS_PATH) + " 999999 2>&1";
    FILE* f = ::popen(cmd.c_str(), "r");
    ASSERT_NE(f, nullptr);
    char buf[512] = {};
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    int status = ::pclose(f);
    EXPECT_NE(status, 0);
    EXPECT_TRUE(contains(std::string(buf, n), "cannot reach")) << buf;
}
