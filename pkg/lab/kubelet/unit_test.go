package kubelet

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNetnsName(t *testing.T) {
	if got := NetnsName("lab-pod-", "0d7c5a3e-91f2-4b7e-9a51-6f1c2b3d4e5f"); got != "lab-pod-0d7c5a3e-91f" {
		t.Errorf("NetnsName = %q", got)
	}
	if got := ContainerID("0d7c5a3e-91f2-4b7e-9a51-6f1c2b3d4e5f"); got != "0d7c5a3e91f24b7e9a516f1c2b3d4e5f" {
		t.Errorf("ContainerID = %q", got)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "y y"}
	for in, want := range map[string]string{
		"plain":         "plain",
		"$(A)":          "x",
		"$(A)-$(B)":     "x-y y",
		"$(UNSET)":      "$(UNSET)",
		"$$(A)":         "$(A)",
		"$$":            "$",
		"$A $1 $":       "$A $1 $",
		"$(A":           "$(A",
		"echo $$HOME":   "echo $HOME",
		"a$(A)b$$c$(B)": "axb$cy y",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPodIPs(t *testing.T) {
	var in []netip.Addr
	for _, s := range []string{"fd00::5", "10.0.0.5", "10.0.0.6", "fd00::6"} {
		in = append(in, netip.MustParseAddr(s))
	}
	if got := podIPs(in); !slices.Equal(got, []string{"10.0.0.5", "fd00::5"}) {
		t.Errorf("podIPs = %v: want the first of each family, IPv4 first", got)
	}
}

func TestGrace(t *testing.T) {
	s := func(n int64) *int64 { return &n }
	for _, c := range []struct {
		spec, del *int64
		want      time.Duration
	}{
		{nil, nil, maxGrace},
		{s(5), nil, 5 * time.Second},
		{s(5), s(0), minGrace},
		{s(60), s(60), maxGrace},
	} {
		p := &corev1.Pod{Spec: corev1.PodSpec{TerminationGracePeriodSeconds: c.spec}}
		p.DeletionGracePeriodSeconds = c.del
		if got := grace(p); got != c.want {
			t.Errorf("grace(spec %v, deletion %v) = %v, want %v", c.spec, c.del, got, c.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{NodeName: "n1"}}
	c := &corev1.Container{
		Name:    "c",
		Command: []string{"sh", "-c"},
		Args:    []string{"echo $(X) $(NODE) $(IP) $(APP) $(SECRET)"},
		Env: []corev1.EnvVar{
			{Name: "X", Value: "x"},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIPs"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}},
		},
	}
	argv, env, dir, note := commandLine(pod, c, []string{"10.0.0.1", "fd00::1"}, nil)
	if want := []string{"sh", "-c", "echo x n1 10.0.0.1,fd00::1 web $(SECRET)"}; !slices.Equal(argv, want) {
		t.Errorf("argv %q, want %q", argv, want)
	}
	if dir != "/" || note != "" {
		t.Errorf("dir %q note %q", dir, note)
	}
	if !slices.Contains(env, "HOSTNAME=p") || !slices.Contains(env, "X=x") || slices.ContainsFunc(env, func(s string) bool { return len(s) > 7 && s[:7] == "SECRET=" }) {
		t.Errorf("env %q", env)
	}
	argv, _, _, note = commandLine(pod, &corev1.Container{Name: "pause"}, nil, nil)
	if !slices.Equal(argv, []string{"sleep", "infinity"}) || note == "" {
		t.Errorf("no command: argv %q note %q", argv, note)
	}
	argv, _, _, _ = commandLine(pod, &corev1.Container{Name: "a", Args: []string{"sleep", "1"}}, nil, nil)
	if !slices.Equal(argv, []string{"sleep", "1"}) {
		t.Errorf("args only: argv %q", argv)
	}
}

func TestLookPath(t *testing.T) {
	env := []string{"PATH=/nonexistent:/bin:/usr/bin"}
	if p, err := lookPath("sh", env, "/"); err != nil || (p != "/bin/sh" && p != "/usr/bin/sh") {
		t.Errorf("lookPath(sh) = %q, %v", p, err)
	}
	if _, err := lookPath("no-such-command-here", env, "/"); err == nil {
		t.Error("lookPath found a missing command")
	}
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := lookPath(plain, env, "/"); err == nil {
		t.Error("lookPath accepted a file that is not executable")
	}
}
