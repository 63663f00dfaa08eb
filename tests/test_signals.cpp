// Signal handlers run on the loop, never inside the OS-level handler.
#include <corio/testing.hpp>

#include <signal.h>

using namespace corio;

CORIO_TEST(Signals, HandlerRunsOnTheLoopAndCanBeRemoved) {
    EventLoop& loop = get_running_loop();
    int seen = 0;
    Event fired;
    loop.add_signal_handler(SIGUSR1, [&] {
        ++seen;
        fired.set();
    });
    ::raise(SIGUSR1);
    co_await fired.wait();
    EXPECT_EQ(seen, 1);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
}

CORIO_TEST(Signals, UncatchableSignalsAreRefused) {
    bool refused = false;
    try {
        get_running_loop().add_signal_handler(SIGKILL, [] {});
    } catch (const std::invalid_argument&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
    co_return;  // a CORIO_TEST body must be a coroutine
}

namespace {
Coro<int> interrupted_main(bool* cleaned) {
    try {
        ::raise(SIGINT);  // as if the user pressed Ctrl-C
        co_await sleep(std::chrono::hours(1));
    } catch (const CancelledError&) {
        *cleaned = true;
        throw;
    }
    co_return 0;
}
}  // namespace

TEST(RunSigint, FirstCtrlCCancelsMainThenKeyboardInterrupt) {
    bool cleaned = false;
    bool interrupted = false;
    try {
        run(interrupted_main(&cleaned));
    } catch (const KeyboardInterrupt&) {
        interrupted = true;
    }
    EXPECT_TRUE(cleaned);
    EXPECT_TRUE(interrupted);
    struct sigaction sa {};
    ::sigaction(SIGINT, nullptr, &sa);
    EXPECT_EQ(sa.sa_handler, SIG_DFL);  // restored afterwards
}
