package node_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/actors/actortest"
	"github.com/procsup/procsup/actors/httpstatus"
	"github.com/procsup/procsup/node"
	"github.com/procsup/procsup/node/nodetest"
)

// A cluster in one view: the owner's status page lists the members beside the tree, and
// the row of a process placed on another node says which.
func TestStatusPageShowsTheCluster(t *testing.T) {
	a := owner(t)
	actortest.CheckLeaks(t)
	b := nodetest.StartProcess(t, "view-b", a.MemberAddr())
	waitMembers(t, a, "owner", b.Name)

	probe := actortest.NewProbe(t, a.System(), nil)
	props, err := a.NewProcess(node.ProcessConfig{Spec: "echo", Node: b.Name})
	if err != nil {
		t.Fatal(err)
	}
	tree := probe.Spawn(actors.NewTree(nil, actors.Spec{Name: "remote", Props: props}), "cluster-view")
	probe.Watch(tree)
	proxy := actors.ChildPID(tree, "remote")
	actortest.ExpectType(probe, wait, running(proxy))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		actors.StopAndWait(ctx, a.System(), tree)
	}()

	status := httpstatus.New(a.System(), tree, httpstatus.Options{Members: a.StatusMembers, HistoryInterval: -1})
	defer status.Close()
	srv := httptest.NewServer(status)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	members := regexp.MustCompile(`(?s)<table id="members">.*?</table>`).Find(page)
	for _, name := range []string{"owner", b.Name} {
		if !regexp.MustCompile(`<tr><td>` + regexp.QuoteMeta(name) + `</td><td>[^<]+:\d+</td><td class="num">\d+</td>`).Match(members) {
			t.Errorf("the members table has no row for %s:\n%s", name, members)
		}
	}
	row := regexp.MustCompile(`(?s)<tr class="process" data-id="` + regexp.QuoteMeta(proxy.Id) + `">.*?</tr>`).Find(page)
	if !strings.Contains(string(row), "<td>"+b.Name+"</td>") {
		t.Errorf("the remote process's row does not say it runs on %s:\n%s", b.Name, row)
	}
	if !strings.Contains(string(page), "on "+b.Name+": 1") {
		t.Errorf("the summary does not count the process on %s", b.Name)
	}
}
