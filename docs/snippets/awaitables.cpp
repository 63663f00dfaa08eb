// The three kinds of awaitable, and the entry points: corio::run, RunOptions, corio::Runner.
#include <corio/corio.hpp>

#include <iostream>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;

corio::Coro<std::string> fetch_data(std::string url) {
    co_await corio::sleep(10ms);
    co_return "data for " + url;
}

// [awaitables]
corio::Coro<int> three_awaitables() {
    // 1. A coroutine: calling fetch_data runs nothing yet; co_await runs it to the end.
    std::string a = co_await fetch_data("a");

    // 2. A task: the coroutine is scheduled at once and runs concurrently with this one.
    corio::Task<std::string> task = corio::create_task(fetch_data("b"));
    std::string b = co_await task;

    // 3. A future: a result that someone else sets (here, a timer callback).
    corio::EventLoop& loop = corio::get_running_loop();
    corio::Future<int> answer = loop.create_future<int>();
    loop.call_later(10ms, [answer]() mutable { answer.set_result(42); });
    int c = co_await answer;

    std::cout << a << ", " << b << ", " << c << '\n';
    co_return c;
}
// [end awaitables]

int runner_demo() {
    // [runner]
    corio::Runner runner;                          // with asyncio.Runner() as runner:
    std::string a = runner.run(fetch_data("a"));   //     a = runner.run(fetch_data("a"))
    std::string b = runner.run(fetch_data("b"));   //     b = runner.run(fetch_data("b"))
    runner.close();                                // (the destructor closes it too)
    // [end runner]
    return a == "data for a" && b == "data for b" ? 0 : 1;
}

int main() {
    // [run]
    // asyncio.run(main(), debug=True)
    int answer = corio::run(three_awaitables(), corio::RunOptions{.debug = true});
    // [end run]
    if (answer != 42) return 1;
    return runner_demo();
}
