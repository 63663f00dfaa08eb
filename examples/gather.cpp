// Seed "Concurrent Execution with gather": three fetches at once, failures kept as values.
//   results = await asyncio.gather(*[fetch_data(url) for url in urls], return_exceptions=True)
#include <corio/corio.hpp>

#include <algorithm>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int in_flight = 0, most_in_flight = 0;

corio::Coro<std::string> fetch_data(std::string url) {
    most_in_flight = std::max(most_in_flight, ++in_flight);
    co_await corio::sleep(100ms);
    --in_flight;
    if (url == "url2") throw std::runtime_error("connection reset while fetching " + url);
    co_return "data for " + url;
}

corio::Coro<int> fetch_multiple() {
    std::vector<std::string> urls{"url1", "url2", "url3"};
    std::vector<corio::Coro<std::string>> fetches;
    for (const auto& url : urls) fetches.push_back(fetch_data(url));
    auto start = corio::get_running_loop().time();
    // Continue if one fails: each result is an Outcome holding a value or the exception.
    std::vector<corio::Outcome<std::string>> results =
        co_await corio::gather(corio::return_exceptions, std::move(fetches));
    auto took = corio::get_running_loop().time() - start;
    int ok = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (results[i])
            std::cout << urls[i] << ": " << results[i].value() << "\n", ++ok;
        else
            std::cout << urls[i] << ": error: " << corio::describe(results[i].error()) << "\n";
    }
    // Concurrent, not sequential: three 100 ms fetches take about 100 ms, not 300 ms (all three
    // were in flight at once; the time is shown, not checked, as a loaded machine stretches it).
    std::cout << "took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms, "
              << most_in_flight << " fetches at once\n";
    co_return (ok == 2 && most_in_flight == 3) ? 0 : 1;
}

int main() { return corio::run(fetch_multiple()); }
