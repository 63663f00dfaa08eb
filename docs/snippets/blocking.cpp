// Blocking code: to_thread, run_in_executor, a ThreadPool for CPU-bound work, stop tokens.
#include <corio/corio.hpp>

#include <chrono>
#include <iostream>
#include <stop_token>
#include <string>
#include <thread>

using namespace std::chrono_literals;

// [to-thread]
std::string cpu_light_blocking() {
    std::this_thread::sleep_for(50ms);  // blocking I/O: never call it on the loop's thread
    return "done";
}

corio::Coro<std::string> use_to_thread() {
    std::string result = co_await corio::to_thread(cpu_light_blocking);
    co_return result;
}
// [end to-thread]

// [run-in-executor]
long cpu_heavy_func(long n) {
    long sum = 0;
    for (long i = 0; i < n; ++i) sum += i % 7;
    return sum;
}

corio::Coro<long> use_executors() {
    corio::EventLoop& loop = corio::get_running_loop();

    // Thread pool (default): loop.run_in_executor(None, blocking_io_func)
    std::string r = co_await corio::run_in_executor(loop.default_executor(), cpu_light_blocking);

    // A pool of its own for CPU-bound work: no GIL, so threads run it in parallel.
    corio::ThreadPool pool(2);
    long result = co_await corio::run_in_executor(pool, cpu_heavy_func, 1'000'000L);
    co_return r == "done" ? result : -1;
}
// [end run-in-executor]

// [stop-token]
// A function whose first parameter is a std::stop_token is asked to stop when the awaiting
// task is cancelled (a thread cannot be killed; it has to look).
int poll_device(std::stop_token stop, int attempts) {
    for (int i = 0; i < attempts; ++i) {
        if (stop.stop_requested()) return -1;
        std::this_thread::sleep_for(10ms);
    }
    return attempts;
}

corio::Coro<> give_up_early() {
    try {
        co_await corio::wait_for(corio::to_thread(poll_device, 1000), 50ms);
    } catch (const corio::TimeoutError&) {
        std::cout << "gave up; the thread saw the stop request and returned\n";
    }
}
// [end stop-token]

corio::Coro<int> main_coro() {
    std::string a = co_await use_to_thread();
    long b = co_await use_executors();
    co_await give_up_early();
    std::cout << a << ' ' << b << '\n';
    co_return a == "done" && b == cpu_heavy_func(1'000'000L) ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
