package cli

import (
	"bytes"
	"testing"

	containersv1 "github.com/berth-project/berth/proto/services/containers/v1"
)

func TestCPUPercent(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    *containersv1.StatsEntry
		want float64
	}{
		// Half a second of CPU over a second of 4 CPUs' time: docker's
		// 0.5/4 * 4 * 100.
		{"busy half", &containersv1.StatsEntry{PreCpuTotalUsage: 1e9, CpuTotalUsage: 1.5e9, PreSystemCpuUsage: 100e9, SystemCpuUsage: 104e9, OnlineCpus: 4}, 50},
		{"two cpus busy", &containersv1.StatsEntry{PreCpuTotalUsage: 0, CpuTotalUsage: 2e9, PreSystemCpuUsage: 10e9, SystemCpuUsage: 12e9, OnlineCpus: 2}, 200},
		{"idle", &containersv1.StatsEntry{PreCpuTotalUsage: 5, CpuTotalUsage: 5, PreSystemCpuUsage: 1, SystemCpuUsage: 9, OnlineCpus: 2}, 0},
		{"no system delta", &containersv1.StatsEntry{CpuTotalUsage: 5, PreSystemCpuUsage: 9, SystemCpuUsage: 9, OnlineCpus: 2}, 0},
		{"zero", &containersv1.StatsEntry{}, 0},
	} {
		if got := cpuPercent(tc.e); got != tc.want {
			t.Errorf("%s: cpuPercent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMemoryUsage(t *testing.T) {
	if got := memoryUsage(&containersv1.StatsEntry{MemoryUsage: 10 << 20, MemoryCache: 4 << 20}); got != 6<<20 {
		t.Errorf("usage less cache = %d, want %d", got, 6<<20)
	}
	// A cache larger than the usage (counters read apart) is not subtracted.
	if got := memoryUsage(&containersv1.StatsEntry{MemoryUsage: 1 << 20, MemoryCache: 2 << 20}); got != 1<<20 {
		t.Errorf("usage with a larger cache = %d, want %d", got, 1<<20)
	}
}

func TestStatsRow(t *testing.T) {
	e := &containersv1.StatsEntry{
		Id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Name: "web", Running: true,
		PreCpuTotalUsage: 1e9, CpuTotalUsage: 1.25e9, PreSystemCpuUsage: 100e9, SystemCpuUsage: 102e9, OnlineCpus: 2,
		MemoryUsage: 2<<20 + 512<<10, MemoryCache: 1 << 20, MemoryLimit: 8160437862, // 7.6GiB
		NetworkRxBytes: 1234, NetworkTxBytes: 648, BlockReadBytes: 4_100_000, BlockWriteBytes: 0,
		PidsCurrent: 3,
	}
	got := statsRow("web", e, false)
	want := StatsRow{
		Container: "web", Name: "web", ID: "0123456789ab", CPUPerc: "25.00%",
		MemUsage: "1.5MiB / 7.6GiB", MemPerc: "0.02%", NetIO: "1.23kB / 648B", BlockIO: "4.1MB / 0B", PIDs: "3",
	}
	if got != want {
		t.Errorf("statsRow =\n %+v\nwant\n %+v", got, want)
	}
	if got := statsRow(e.GetId(), e, true).ID; got != e.GetId() {
		t.Errorf("--no-trunc ID = %q", got)
	}
	// A container that does not run: zeros, as docker shows it.
	zero := statsRow("old", &containersv1.StatsEntry{Id: "abc", Name: "old"}, false)
	wantZero := StatsRow{Container: "old", Name: "old", ID: "abc", CPUPerc: "0.00%", MemUsage: "0B / 0B", MemPerc: "0.00%", NetIO: "0B / 0B", BlockIO: "0B / 0B", PIDs: "0"}
	if zero != wantZero {
		t.Errorf("zero row =\n %+v\nwant\n %+v", zero, wantZero)
	}
	if got := statsRow("x", &containersv1.StatsEntry{Id: "abc"}, false).Name; got != "--" {
		t.Errorf("nameless row's Name = %q, want --", got)
	}
}

func TestStatsTable(t *testing.T) {
	row := StatsRow{Container: "web", Name: "web", ID: "0123456789ab", CPUPerc: "25.00%", MemUsage: "1.5MiB / 7.6GiB", MemPerc: "0.02%", NetIO: "1.23kB / 648B", BlockIO: "4.1MB / 0B", PIDs: "3"}
	var buf bytes.Buffer
	if err := list(&buf, "", statsTable, statsHeaders, []any{row}); err != nil {
		t.Fatal(err)
	}
	want := "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O         BLOCK I/O    PIDS\n" +
		"0123456789ab   web       25.00%    1.5MiB / 7.6GiB     0.02%     1.23kB / 648B   4.1MB / 0B   3\n"
	if buf.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := list(&buf, "table {{.Container}}\t{{.CPUPerc}}", statsTable, statsHeaders, []any{row}); err != nil {
		t.Fatal(err)
	}
	if want := "CONTAINER   CPU %\nweb         25.00%\n"; buf.String() != want {
		t.Errorf("custom table:\n%q\nwant:\n%q", buf.String(), want)
	}
	buf.Reset()
	if err := list(&buf, "json", statsTable, statsHeaders, []any{row}); err != nil {
		t.Fatal(err)
	}
	if want := `{"Container":"web","Name":"web","ID":"0123456789ab","CPUPerc":"25.00%","MemUsage":"1.5MiB / 7.6GiB","MemPerc":"0.02%","NetIO":"1.23kB / 648B","BlockIO":"4.1MB / 0B","PIDs":"3"}` + "\n"; buf.String() != want {
		t.Errorf("json:\n%s\nwant:\n%s", buf.String(), want)
	}
}
