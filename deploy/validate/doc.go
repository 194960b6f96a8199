// Package validate checks mciv's deployment files (deploy/): the Helm chart
// rendered with helm's own library and decoded strictly into the Kubernetes
// API types, the systemd units with systemd-analyze and under their
// capability set, and the Grafana dashboard against the metrics a running
// `mciv up` exports. It is a separate module so that helm and k8s.io stay
// out of mciv's go.mod; its tests build mciv from the repository.
package validate
