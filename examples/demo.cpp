// `make demo`: the core at work. A producer feeds jobs into a bounded Queue; a TaskGroup of
// workers takes them; a Semaphore lets only two "downloads" run at once; each download has a
// timeout; a blocking checksum goes to a thread; when the queue is drained the group is
// cancelled. Every step is printed with the time it happened.
#include <corio/corio.hpp>
#include <corio/queue.hpp>
#include <corio/semaphore.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

struct Job {
    int id;
    std::chrono::milliseconds work;
};

struct Stats {
    int done = 0;
    int timed_out = 0;
    int cancelled_workers = 0;
};

corio::Clock::time_point start;

void say(const std::string& who, const std::string& what) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(corio::get_running_loop().time() - start);
    std::printf("[%5lld ms] %-10s %s\n", static_cast<long long>(ms.count()), who.c_str(), what.c_str());
    std::fflush(stdout);
}

// A blocking step: never on the loop's thread.
unsigned checksum(int id) {
    std::this_thread::sleep_for(5ms);
    unsigned h = 2166136261u;
    for (int i = 0; i < 1000; ++i) h = (h ^ unsigned(id + i)) * 16777619u;
    return h;
}

corio::Coro<> download(Job job) { co_await corio::sleep(job.work); }

corio::Coro<> worker(std::string name, corio::Queue<Job>* jobs, corio::Semaphore* downloads, Stats* stats) {
    try {
        for (;;) {
            Job job = co_await jobs->get();
            {
                auto permit = co_await downloads->acquire();  // at most two downloads at once
                say(name, "job " + std::to_string(job.id) + ": downloading (" + std::to_string(job.work.count()) + " ms)");
                try {
                    co_await corio::wait_for(download(job), 250ms);
                    unsigned sum = co_await corio::to_thread(checksum, job.id);
                    say(name, "job " + std::to_string(job.id) + ": done, checksum " + std::to_string(sum % 10000));
                    ++stats->done;
                } catch (const corio::TimeoutError&) {
                    say(name, "job " + std::to_string(job.id) + ": timed out after 250 ms");
                    ++stats->timed_out;
                }
            }
            jobs->task_done();
        }
    } catch (const corio::CancelledError&) {
        say(name, "cancelled: no more work");
        ++stats->cancelled_workers;
        throw;  // clean up, then let the cancellation go on
    }
}

corio::Coro<int> main_coro() {
    start = corio::get_running_loop().time();
    corio::Queue<Job> jobs(3);
    corio::Semaphore downloads(2);
    Stats stats;
    co_await corio::task_group([&](corio::TaskGroup& tg) -> corio::Coro<> {
        for (int w = 1; w <= 4; ++w) tg.create_task(worker("worker-" + std::to_string(w), &jobs, &downloads, &stats));
        for (int id = 1; id <= 12; ++id) {
            auto work = std::chrono::milliseconds(40 + (id * 37) % 300);
            co_await jobs.put(Job{id, work});  // waits while the queue is full
            say("producer", "queued job " + std::to_string(id));
        }
        co_await jobs.join();
        say("producer", "every job handled: cancelling the workers");
        tg.cancel();
    });
    std::printf("\n%d done, %d timed out, %d workers cancelled cleanly, %zu tasks left\n", stats.done,
                stats.timed_out, stats.cancelled_workers, corio::all_tasks().size() - 1);
    co_return (stats.done + stats.timed_out == 12 && stats.cancelled_workers == 4) ? 0 : 1;
}

}  // namespace

int main() { return corio::run(main_coro()); }
