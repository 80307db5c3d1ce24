package v3

import (
	"context"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
)

// TestCRDsValid runs the API server's own CRD validation on the committed
// CRDs, offline: structural schema rules, and compilation and cost
// estimation of the CEL rules (x-kubernetes-validations).
func TestCRDsValid(t *testing.T) {
	for kind, crd := range loadCRDs(t) {
		var internal apiextensions.CustomResourceDefinition
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, &internal, nil); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		internal.Status.StoredVersions = []string{"v3"} // set by the API server on creation
		if errs := validation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
			t.Errorf("%s: the API server would reject the CRD: %v", kind, errs.ToAggregate())
		}
	}

	// The check has teeth: a CEL rule naming a field that does not exist.
	crd := loadCRDs(t)["IPPool"].DeepCopy()
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	spec.XValidations = append(spec.XValidations, apiextensionsv1.ValidationRule{Rule: "self.nope == 1"})
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
	var internal apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, &internal, nil); err != nil {
		t.Fatal(err)
	}
	internal.Status.StoredVersions = []string{"v3"}
	if errs := validation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) == 0 {
		t.Error("a CRD with a broken CEL rule passed validation")
	}
}
