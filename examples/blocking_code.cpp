// Seed "Mixing Blocking and Async" / "Running Blocking Code": to_thread, run_in_executor,
// and a pool for CPU-bound work (the seed's ProcessPoolExecutor: C++ has no GIL, so a
// ThreadPool runs CPU-bound work in parallel).
#include <corio/corio.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

using namespace std::chrono_literals;

std::string blocking_io() {
    std::this_thread::sleep_for(100ms);  // legacy blocking code: never call it on the loop
    return "result";
}

long cpu_heavy_func(long n) {
    long sum = 0;
    for (long i = 0; i < n; ++i) sum += i % 7;
    return sum;
}

// A coroutine that hands the work to a pool (parameters by value: the pool by pointer).
corio::Coro<long> crunch(corio::ThreadPool* pool, long n) {
    co_return co_await corio::run_in_executor(*pool, cpu_heavy_func, n);
}

// Shows that the loop stays responsive while the threads work: it ticks until told to stop.
corio::Coro<long> ticker(const bool* stop) {
    long ticks = 0;
    while (!*stop) {
        co_await corio::sleep(1ms);
        ++ticks;
    }
    co_return ticks;
}

corio::Coro<long> crunch_then_stop(corio::ThreadPool* pool, long n, bool* stop) {
    long sum = co_await crunch(pool, n);
    *stop = true;
    co_return sum;
}

corio::Coro<int> main_coro() {
    // asyncio.to_thread(blocking_io)
    std::string r1 = co_await corio::to_thread(blocking_io);
    // loop.run_in_executor(None, blocking_io): the loop's default executor
    std::string r2 = co_await corio::run_in_executor(corio::get_running_loop().default_executor(), blocking_io);
    // with ProcessPoolExecutor() as pool: loop.run_in_executor(pool, cpu_heavy_func, arg1)
    // The pool is a local: gather returns only once every call on it is done.
    corio::ThreadPool pool(2);
    bool stop = false;
    auto crunching = corio::gather(crunch(&pool, 1'000'000L), crunch_then_stop(&pool, 20'000'000L, &stop), ticker(&stop));
    auto results = co_await std::move(crunching);
    auto& [a, b, ticks] = results;
    std::cout << r1 << " " << r2 << " " << a << " " << b << " (the loop ticked " << ticks << " times meanwhile)\n";
    // ticks > 0: the loop ran the ticker while the pool crunched (had the calls run on the
    // loop's thread, the stop flag would have been set before the ticker's first step).
    bool ok = r1 == "result" && r2 == "result" && a == cpu_heavy_func(1'000'000L) && b == cpu_heavy_func(20'000'000L) && ticks > 0;
    co_return ok ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
