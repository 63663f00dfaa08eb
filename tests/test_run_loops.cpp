// One loop per core (corio/run_loops.hpp): results in order, one thread per loop, the first
// failure cancels the others and is rethrown, loops talk through call_soon_threadsafe, and
// reuse_port servers on several loops share one port; one loop run on one thread, then on
// another. Plain gtest (run_loops is the entry point,
// like corio::run, so it is not called from inside a CORIO_TEST).
#include <corio/corio.hpp>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <latch>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include "net_support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

Coro<std::thread::id> report_thread(std::size_t index) {
    co_await sleep(Clock::duration::zero());
    (void)index;
    co_return std::this_thread::get_id();
}

TEST(RunLoops, ResultsComeBackInOrderOneThreadEach) {
    auto ids = run_loops(3, [](std::size_t i) { return report_thread(i); });
    ASSERT_EQ(ids.size(), 3u);
    EXPECT_EQ(ids[0], std::this_thread::get_id());  // loop 0 runs on the calling thread
    std::set<std::thread::id> distinct(ids.begin(), ids.end());
    EXPECT_EQ(distinct.size(), 3u);
}

Coro<int> square(std::size_t i) {
    co_await sleep(1ms);
    co_return int(i * i);
}

TEST(RunLoops, ValuesOfEachLoop) {
    EXPECT_EQ(run_loops(4, [](std::size_t i) { return square(i); }), (std::vector<int>{0, 1, 4, 9}));
}

TEST(RunLoops, CountZeroIsRejected) {
    EXPECT_THROW(run_loops(0, [](std::size_t i) { return square(i); }), std::invalid_argument);
}

struct Progress {
    std::latch waiting{2};
    std::atomic<int> cleaned_up{0};
};

Coro<> wait_forever_or_fail(std::size_t index, Progress* progress) {
    if (index == 2) {
        // Fail only once the others wait: the failure must reach loops that are blocked.
        co_await to_thread([progress] { progress->waiting.wait(); });
        throw std::runtime_error("loop 2 failed");
    }
    Event never;
    progress->waiting.count_down();
    try {
        co_await never.wait();
    } catch (const CancelledError&) {
        progress->cleaned_up.fetch_add(1);
        throw;
    }
}

TEST(RunLoops, FirstFailureCancelsTheOtherLoopsAndIsRethrown) {
    Progress progress;
    try {
        run_loops(3, [&](std::size_t i) { return wait_forever_or_fail(i, &progress); });
        FAIL() << "expected the failure of loop 2";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "loop 2 failed");
    }
    EXPECT_EQ(progress.cleaned_up.load(), 2);
}

Coro<> fail_at_once(std::size_t index) {
    if (index == 1) throw std::logic_error("early");
    Event never;
    co_await never.wait();
}

TEST(RunLoops, AFailureBeforeTheOthersStartStillStopsThem) {
    EXPECT_THROW(run_loops(4, [](std::size_t i) { return fail_at_once(i); }), std::logic_error);
}

// Loop 1 resolves a future of loop 0 through call_soon_threadsafe, the one thread-safe entry
// point: the callback runs on loop 0's thread, where the future lives.
struct Mailbox {
    std::promise<std::pair<EventLoop*, Future<int>*>> loop0;
    std::shared_future<std::pair<EventLoop*, Future<int>*>> ready = loop0.get_future().share();
};

Coro<int> exchange(std::size_t index, Mailbox* box) {
    if (index == 0) {
        Future<int> answer = get_running_loop().create_future<int>();
        box->loop0.set_value({&get_running_loop(), &answer});
        int got = co_await answer;
        co_return got;
    }
    auto [loop0, answer] = co_await to_thread([box] { return box->ready.get(); });
    loop0->call_soon_threadsafe([answer = answer] { answer->set_result(42); });
    co_return 1;
}

std::atomic<bool> g_ctrl_c_watched{false};

Coro<> done_at_once_or_wait_for_ctrl_c(std::size_t index, std::atomic<int>* cleaned_up, int signal_number = SIGINT) {
    if (index == 0) co_return;
    // Loop 0 is done; once run_loops watches Ctrl-C again, press it.
    while (!g_ctrl_c_watched.load()) co_await sleep(1ms);
    ::kill(::getpid(), signal_number);
    Event never;
    try {
        co_await never.wait();
    } catch (const CancelledError&) {
        cleaned_up->fetch_add(1);
        throw;
    }
}

// R5 for run_loops: Ctrl-C after loop 0 has returned still cancels the other loops, which clean
// up, and run_loops throws KeyboardInterrupt. Loop 0's run had given SIGINT back to SIG_DFL, so
// the process was killed, and no loop cleaned up.
TEST(RunLoops, CtrlCAfterLoopZeroIsDoneStillCancelsTheOthers) {
    g_ctrl_c_watched = false;
    detail::run_loops_watching_hook = [] { g_ctrl_c_watched.store(true); };
    std::atomic<int> cleaned_up{0};
    bool interrupted = false;
    try {
        run_loops(2, [&](std::size_t i) { return done_at_once_or_wait_for_ctrl_c(i, &cleaned_up); });
    } catch (const KeyboardInterrupt&) {
        interrupted = true;
    }
    detail::run_loops_watching_hook = nullptr;
    EXPECT_TRUE(interrupted);
    EXPECT_EQ(cleaned_up.load(), 1);
    struct sigaction now {};
    ::sigaction(SIGINT, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_DFL);
}

// The same with SIGTERM: reported as such (it was KeyboardInterrupt's default, SIGINT).
TEST(RunLoops, SigtermAfterLoopZeroIsDoneIsReportedAsSigterm) {
    g_ctrl_c_watched = false;
    detail::run_loops_watching_hook = [] { g_ctrl_c_watched.store(true); };
    std::atomic<int> cleaned_up{0};
    int signal_number = 0;
    try {
        run_loops(2, [&](std::size_t i) { return done_at_once_or_wait_for_ctrl_c(i, &cleaned_up, SIGTERM); });
    } catch (const KeyboardInterrupt& k) {
        signal_number = k.signal();
    }
    detail::run_loops_watching_hook = nullptr;
    EXPECT_EQ(signal_number, SIGTERM);
    EXPECT_EQ(cleaned_up.load(), 1);
    struct sigaction now {};
    ::sigaction(SIGTERM, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_DFL);
}

TEST(RunLoops, LoopsTalkThroughCallSoonThreadsafe) {
    Mailbox box;
    EXPECT_EQ(run_loops(2, [&](std::size_t i) { return exchange(i, &box); }), (std::vector<int>{42, 1}));
}

int allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    EXPECT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
    return CPU_COUNT(&set);
}

Coro<int> cpus_of_this_loop(std::size_t) {
    co_await sleep(Clock::duration::zero());
    co_return allowed_cpus();
}

struct PinnedCpus {
    int loop = 0, worker = 0, child = 0;
    bool operator==(const PinnedCpus&) const = default;
    friend std::ostream& operator<<(std::ostream& os, const PinnedCpus& p) {
        return os << "loop " << p.loop << ", worker " << p.worker << ", child " << p.child << " CPUs";
    }
};

Coro<PinnedCpus> cpus_of_a_loop_its_worker_and_its_child(std::size_t) {
    PinnedCpus seen;
    seen.loop = allowed_cpus();
    auto on_worker = to_thread([] { return allowed_cpus(); });
    seen.worker = co_await std::move(on_worker);
    SubprocessOptions options;
    options.out = PIPE;
    options.env = std::vector<std::string>{"PATH=/usr/bin:/bin"};  // no OMP_NUM_THREADS for nproc to follow
    Coro<Process> spawning = create_subprocess_exec({"nproc"}, options);  // nproc counts its allowed CPUs
    Process child = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = child.communicate();
    auto [out, err] = co_await std::move(talking);
    seen.child = std::stoi(out);
    co_return seen;
}

// Pinning is for the loop's own thread: its to_thread workers and its children keep the CPUs the
// process had (they inherited the loop's one CPU, and competed with it there).
TEST(RunLoops, APinnedLoopsWorkersAndChildrenAreNotPinned) {
    int before = allowed_cpus();
    if (before < 2) GTEST_SKIP() << "needs two CPUs to tell pinned from unpinned";
    RunLoopsOptions options;
    options.pin_threads = true;
    auto seen = run_loops(2, [](std::size_t i) { return cpus_of_a_loop_its_worker_and_its_child(i); }, std::move(options));
    for (const PinnedCpus& s : seen) EXPECT_EQ(s, (PinnedCpus{1, before, before}));
    EXPECT_EQ(allowed_cpus(), before);
}

TEST(RunLoops, PinnedLoopsRunOnOneCpuEachAndTheCallerIsUnpinnedAfter) {
    int before = allowed_cpus();
    RunLoopsOptions options;
    options.pin_threads = true;
    EXPECT_EQ(run_loops(2, [](std::size_t i) { return cpus_of_this_loop(i); }, std::move(options)),
              (std::vector<int>{1, 1}));
    EXPECT_EQ(allowed_cpus(), before);
}

}  // namespace

namespace {
Coro<std::string> round_trip_on_a_socket_pair() {
    auto [a, b] = corio_test::unix_socket_pair();
    Task<std::string> receiving = create_task(sock_recv(b, 10));
    co_await sleep(0s);  // waits in the backend
    Coro<> sending = sock_sendall(a, "ping");
    co_await std::move(sending);
    std::string got = co_await receiving;
    co_return got;
}

Coro<Task<std::string>> start_receiving(Socket* s) {
    Task<std::string> receiving = create_task(sock_recv(*s, 10));
    for (int i = 0; i < 3; ++i) co_await sleep(0s);  // in the backend (io_uring: in the kernel)
    co_return receiving;
}

Coro<> one_tick() { co_await sleep(0s); }

Coro<std::string> send_and_take(Socket* s, Task<std::string> receiving) {
    Coro<> sending = sock_sendall(*s, "ping");
    co_await std::move(sending);
    std::string got = co_await receiving;
    co_return got;
}
}  // namespace

// asyncio lets a loop run on one thread, then on another. A deferred io_uring ring accepts one
// submitting thread, and the second thread's run failed with "io_uring_submit: File exists";
// an idle ring is now replaced for the new thread.
TEST(LoopThreads, ALoopMayRunOnOneThreadThenOnAnother) {
    Runner runner;
    for (int round = 0; round < 3; ++round) {
        std::string got;
        std::thread other([&] { got = runner.run(round_trip_on_a_socket_pair()); });
        other.join();
        EXPECT_EQ(got, "ping") << "round " << round;
    }
    EXPECT_EQ(runner.run(round_trip_on_a_socket_pair()), "ping");
}

// A run on the main thread watches Ctrl-C through the loop's signal pipe. The pipe's read ends
// with the watch, so the loop may then run on another thread: on io_uring the read stayed in the
// ring, and the other thread's run was refused ("I/O in flight").
TEST(LoopThreads, ALoopThatWatchedCtrlCMayThenRunOnAnotherThread) {
    struct sigaction current {};
    ::sigaction(SIGINT, nullptr, &current);
    if (current.sa_handler != SIG_DFL) GTEST_SKIP() << "SIGINT is not at its default here: the run does not watch it";
    Runner runner;
    EXPECT_EQ(runner.run(round_trip_on_a_socket_pair()), "ping");
    std::string got;
    std::string refused;
    std::thread other([&] {
        try {
            got = runner.run(round_trip_on_a_socket_pair());
        } catch (const std::exception& e) {
            refused = e.what();
        }
    });
    other.join();
    EXPECT_EQ(refused, "");
    EXPECT_EQ(got, "ping");
}

// A loop whose I/O is still in the kernel of a deferred io_uring ring cannot move: the run on
// the other thread says so, and the loop goes on where it ran, losing nothing. Elsewhere
// (epoll) the move just works.
TEST(LoopThreads, ALoopWithIoInFlightMovesOrSaysWhyNotAndLosesNothing) {
    Runner runner;
    auto [a, b] = corio_test::unix_socket_pair();
    Task<std::string> receiving = runner.run(start_receiving(&b));
    std::optional<std::string> refused;
    std::thread other([&] {
        try {
            runner.run(one_tick());
        } catch (const std::logic_error& e) {
            refused = e.what();
        }
    });
    other.join();
    if (refused) {
        EXPECT_STREQ(runner.get_loop().backend().name(), "io_uring");
        EXPECT_NE(refused->find("another thread"), std::string::npos) << *refused;
    }
    EXPECT_EQ(runner.run(send_and_take(&a, receiving)), "ping");
}

// Closing on another thread a loop whose receive is still in the kernel of a deferred io_uring
// ring: that thread may not submit the cancel, and the close ended in std::terminate (with
// provided buffers) or left the receive in the kernel while its frame was freed. The ring is
// dropped and the receive completes as cancelled, having taken nothing.
TEST(LoopThreads, ALoopClosedOnAnotherThreadWithIoInFlightLetsItGo) {
    auto [a, b] = corio_test::unix_socket_pair();
    {
        Runner runner;
        Task<std::string> receiving;
        std::thread other([&] { receiving = runner.run(start_receiving(&b)); });
        other.join();
        try {
            runner.close();  // its shutdown runs the loop here, which a busy ring refuses
        } catch (const std::logic_error& e) {
            EXPECT_NE(std::string(e.what()).find("another thread"), std::string::npos) << e.what();
        }
        EXPECT_THROW(runner.get_loop(), std::logic_error);  // closed all the same
    }
    ASSERT_EQ(::send(a.fileno(), "x", 1, 0), 1);
    char c = 0;
    EXPECT_EQ(::recv(b.fileno(), &c, 1, MSG_DONTWAIT), 1) << "the cancelled receive took the byte";
    EXPECT_EQ(c, 'x');
}
