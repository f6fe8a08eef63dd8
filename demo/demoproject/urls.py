from django.urls import path

from demoproject import views

urlpatterns = [path("", views.index)]
