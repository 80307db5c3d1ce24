package v3

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// The CRDs in deploy/crds are generated from these types by hack/gencrd.sh
// (controller-gen). These tests check that the committed YAML still matches
// the Go types without running the generator: every kind registered in the
// scheme has its CRD, and every JSON field of every Go type appears in the
// schema with a compatible type, and vice versa. (`hack/gencrd.sh --verify`
// checks byte for byte, with the generator.)

const crdDir = "../../../../deploy/crds"

func loadCRDs(t *testing.T) map[string]*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", crdDir, err)
	}
	out := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			t.Fatalf("%s: kind %q", f, crd.Kind)
		}
		if want := GroupName + "_" + crd.Spec.Names.Plural + ".yaml"; filepath.Base(f) != want {
			t.Errorf("%s should be named %s", f, want)
		}
		out[crd.Spec.Names.Kind] = crd
	}
	return out
}

func TestCRDsMatchTypes(t *testing.T) {
	crds := loadCRDs(t)
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]reflect.Type{}
	for kind, typ := range s.KnownTypes(GroupVersion) {
		if strings.HasSuffix(kind, "List") || typ.PkgPath() != reflect.TypeFor[IPPool]().PkgPath() {
			continue // lists, and the meta types AddToGroupVersion adds
		}
		kinds[kind] = typ
	}
	if len(kinds) != 8 {
		t.Errorf("%d kinds registered: %v", len(kinds), kinds)
	}
	for kind := range crds {
		if kinds[kind] == nil {
			t.Errorf("CRD for %s, which the scheme does not know", kind)
		}
	}
	for _, kind := range sortedKeys(kinds) {
		typ := kinds[kind]
		crd := crds[kind]
		if crd == nil {
			t.Errorf("no CRD for %s in %s", kind, crdDir)
			continue
		}
		sp := crd.Spec
		if sp.Group != GroupName || sp.Scope != apiextensionsv1.ClusterScoped || sp.Names.ListKind != kind+"List" ||
			crd.Name != sp.Names.Plural+"."+GroupName || sp.Names.Plural != strings.ToLower(sp.Names.Plural) {
			t.Errorf("%s: CRD names/scope: %s %+v %s", kind, crd.Name, sp.Names, sp.Scope)
		}
		if _, ok := s.KnownTypes(GroupVersion)[kind+"List"]; !ok {
			t.Errorf("%s: no %sList in the scheme", kind, kind)
		}
		if len(sp.Versions) != 1 || sp.Versions[0].Name != "v3" || !sp.Versions[0].Served || !sp.Versions[0].Storage {
			t.Errorf("%s: versions %+v", kind, sp.Versions)
			continue
		}
		root := sp.Versions[0].Schema.OpenAPIV3Schema
		for _, f := range []string{"apiVersion", "kind", "metadata", "spec"} {
			if _, ok := root.Properties[f]; !ok {
				t.Errorf("%s: schema lacks %s", kind, f)
			}
		}
		if len(root.Properties) != 4 {
			t.Errorf("%s: schema properties %v", kind, sortedKeys(root.Properties))
		}
		specField, _ := typ.FieldByName("Spec")
		spec := root.Properties["spec"]
		compareSchema(t, kind+".spec", specField.Type, &spec)
	}

	// What controller-gen cannot express and hack/gencrd.sh patches in.
	alloc := crds["IPAMBlock"].Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["allocations"]
	if alloc.Items == nil || alloc.Items.Schema == nil || !alloc.Items.Schema.Nullable {
		t.Error("IPAMBlock spec.allocations items must be nullable (free addresses are null)")
	}
}

// compareSchema checks a Go type against its schema, recursively.
func compareSchema(t *testing.T, path string, typ reflect.Type, s *apiextensionsv1.JSONSchemaProps) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ {
	case reflect.TypeFor[metav1.Time]():
		if s.Type != "string" || s.Format != "date-time" {
			t.Errorf("%s: metav1.Time as %s/%s", path, s.Type, s.Format)
		}
		return
	case reflect.TypeFor[metav1.Duration]():
		if s.Type != "string" {
			t.Errorf("%s: metav1.Duration as %s", path, s.Type)
		}
		return
	case reflect.TypeFor[ASNumber]():
		if !s.XIntOrString || s.Type != "" {
			t.Errorf("%s: ASNumber must be int-or-string, is type %q int-or-string %v", path, s.Type, s.XIntOrString)
		}
		return
	}
	want := ""
	switch typ.Kind() {
	case reflect.String:
		want = "string"
	case reflect.Bool:
		want = "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "integer"
	case reflect.Float32, reflect.Float64:
		want = "number"
	case reflect.Slice:
		want = "array"
	case reflect.Map, reflect.Struct:
		want = "object"
	default:
		t.Errorf("%s: Go type %s has no JSON schema equivalent", path, typ)
		return
	}
	if s.Type != want {
		t.Errorf("%s: Go %s is %q in the schema, want %q", path, typ, s.Type, want)
		return
	}
	switch typ.Kind() {
	case reflect.Slice:
		if s.Items == nil || s.Items.Schema == nil {
			t.Errorf("%s: array without items", path)
			return
		}
		compareSchema(t, path+"[]", typ.Elem(), s.Items.Schema)
	case reflect.Map:
		if typ.Key().Kind() != reflect.String {
			t.Errorf("%s: map key %s", path, typ.Key())
		}
		if s.AdditionalProperties == nil || s.AdditionalProperties.Schema == nil {
			t.Errorf("%s: map without additionalProperties", path)
			return
		}
		compareSchema(t, path+"{}", typ.Elem(), s.AdditionalProperties.Schema)
	case reflect.Struct:
		fields := jsonFields(typ)
		for _, name := range sortedKeys(fields) {
			prop, ok := s.Properties[name]
			if !ok {
				t.Errorf("%s.%s: Go field %s is missing from the schema", path, name, fields[name].Name)
				continue
			}
			compareSchema(t, path+"."+name, fields[name].Type, &prop)
		}
		for _, name := range sortedKeys(s.Properties) {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s.%s: in the schema but not in Go type %s", path, name, typ)
			}
		}
		for _, name := range s.Required {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s: required %s is not a field", path, name)
			}
		}
	}
}

// jsonFields lists the JSON fields of a struct type, with inline and
// embedded structs flattened as encoding/json does.
func jsonFields(typ reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
